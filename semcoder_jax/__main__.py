import sys

from semcoder_jax.cli.main import main

sys.exit(main())
