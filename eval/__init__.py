"""Evaluation: the paper's benchmarks (HumanEval(+), MBPP(+), LiveCodeBench, CRUXEval) scored with
the official harnesses' semantics on our sandbox, generated through vLLM, transformers, our JAX
sampler or an OpenAI-compatible server, and reported in the layout of the paper's Table 1."""
