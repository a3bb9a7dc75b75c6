import pytest

from semcoder_jax.execution import check_determinism, check_determinism_many


@pytest.mark.parametrize(
    "source, reason",
    [
        ("def f(x):\n    return sorted(x)\n", None),
        ("import random\nrandom.seed(7)\ndef f(x):\n    return random.randint(0, x)\n", None),
        ("import datetime\ndef f(x):\n    return datetime.date(2020, 1, x).isoformat()\n", None),
        ("import time\ndef f(x):\n    return time.time() > x\n", "clock"),
        ("import datetime\ndef f(x):\n    return datetime.datetime.now().year > x\n", "clock"),
        ("import random\ndef f(x):\n    return random.random() < x\n", "randomness"),
        ("import os\ndef f(x):\n    return os.environ.get('HOME', x)\n", "environment"),
        ("def f(x):\n    return open('/etc/hostname').read()[:x]\n", "files"),
        ("import socket\ndef f(x):\n    return socket.gethostname()[:x]\n", "network"),
        ("def f(x):\n    return list({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'})[:x]\n", "hash seeds"),
        ("def f(x):\n    return id(x) > 0\n", "identity"),
        ("def f(x):\n    return sorted([[x], [x]], key=id)[0] == [x]\n", "identity"),
        # Libraries that use id() for bookkeeping only: the program does not depend on identity.
        ("import copy\ndef f(x):\n    return copy.deepcopy([x, [x]])\n", None),
        # Importing lists package folders and lets modules read the environment or clock as they load.
        ("import html, logging, optparse, xml.etree.ElementTree\ndef f(x):\n    return html.escape('<' * x)\n", None),
        ("import time\nSTART = time.time()\ndef f(x):\n    return x\n", "clock"),
        ("import dataclasses, pprint\n@dataclasses.dataclass\nclass P:\n    a: int\n"
         "def f(x):\n    return pprint.pformat([P(x)])\n", None),
        # time.strftime(format) formats the current time; its time argument is the second one.
        ("import time\ndef f(x):\n    return time.strftime('%Y')[:x]\n", "clock"),
        ("import time\ndef f(x):\n    return time.strftime('%Y', time.gmtime(x))\n", None),
        # The message is part of the data ("[EXCEPTION] ValueError: ..."); addresses in it are masked there.
        ("def f(x):\n    raise ValueError(str({'apple', 'banana', 'cherry', 'date', 'elder', 'fig'}))\n", "hash seeds"),
        ("def f(x):\n    raise ValueError(object())\n", None),
    ],
)
def test_determinism_filter(sandbox, source, reason):
    report = check_determinism(source, "f(3)", sandbox=sandbox)
    if reason is None:
        assert report.deterministic and report.reasons == []
    else:
        assert not report.deterministic
        assert any(reason in r for r in report.reasons), report.reasons


def test_batch_keeps_order(sandbox):
    reports = check_determinism_many([("def f():\n    return 1\n", "f()"),
                                      ("import time\ndef f():\n    return time.time()\n", "f()")], sandbox=sandbox)
    assert [r.deterministic for r in reports] == [True, False]
