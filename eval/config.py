"""Evaluation configs: one YAML per benchmark under ``configs/eval/`` with the paper's settings."""

from __future__ import annotations

import dataclasses
from typing import Optional

from eval.benchmarks import check_name


@dataclasses.dataclass
class GenerationSettings:
    n: int = 1
    temperature: float = 0.0  # 0 = greedy (the paper's pass@1)
    top_p: float = 1.0
    top_k: int = 0  # 0 = off (vLLM is sent -1, off in every version); after the temperature, before top-p (HF's order)
    max_new_tokens: int = 512
    seed: int = 0
    batch_size: int = 64  # prompts per backend call (and per cache flush)


@dataclasses.dataclass
class EvalConfig:
    benchmark: str = "humaneval"
    prompt_style: str = "semcoder"
    quotes: Optional[bool] = None  # SemCoder's quote handling; default: on for the semcoder style
    sanitize: bool = True  # EvalPlus's sanitiser on HumanEval/MBPP programs
    data: Optional[str] = None  # local data file instead of the vendored one / the HF hub
    limit: Optional[int] = None
    lcb_version_tag: str = "release_v1"
    lcb_start_date: Optional[str] = None
    lcb_end_date: Optional[str] = None
    refine_rounds: int = 0  # self-refinement rounds after the first generation (paper: 5)
    refine_with_trace: bool = False  # add the tracer's view of the failing run to the feedback
    # SemCoder's refinement sampling (scripts/eval/eval_finetune_refine.sh): temperature 0.6 on
    # HumanEval, 0.8 on MBPP (and LCB-Lite), top-p 0.95, 512 new tokens; 0 decodes greedily.
    refine_temperature: Optional[float] = None
    refine_top_p: float = 0.95
    refine_max_new_tokens: int = 512
    generation: GenerationSettings = dataclasses.field(default_factory=GenerationSettings)

    def validate(self) -> None:
        from eval.tasks import check_style

        check_name(self.benchmark)
        check_style(self.benchmark, self.prompt_style)
        if self.generation.n < 1:
            raise ValueError(f"generation.n must be >= 1, got {self.generation.n}")
        # Checked here, before the model loads: HF took what vLLM and JAX refuse (a negative
        # temperature as greedy decoding, a top-p above 1 as no cut).
        g = self.generation
        for name, temperature, top_p, tokens in (
            ("generation.", g.temperature, g.top_p, g.max_new_tokens),
            ("refine_", self.refine_sampling_temperature, self.refine_top_p, self.refine_max_new_tokens),
        ):
            if temperature < 0 or not 0 < top_p <= 1 or tokens < 1:
                raise ValueError(f"{name}temperature must be >= 0, {name}top_p in (0, 1] and {name}max_new_tokens >= 1; "
                                 f"got {temperature}, {top_p}, {tokens}")
        if isinstance(g.top_k, bool) or not isinstance(g.top_k, int) or g.top_k < 0:
            raise ValueError(f"generation.top_k must be an integer >= 0 (0: off), got {g.top_k!r}")
        if self.limit is not None and self.limit < 1:  # a slice would drop problems from the end, or all
            raise ValueError(f"limit must be >= 1 (the first N problems), got {self.limit}")
        from eval.refine import REFINABLE

        if self.refine_rounds > 0 and self.benchmark not in REFINABLE:
            raise ValueError(f"refine_rounds: self-refinement is defined for {', '.join(REFINABLE)}, not {self.benchmark}")

    @property
    def refine_sampling_temperature(self) -> float:
        if self.refine_temperature is not None:
            return self.refine_temperature
        return 0.6 if self.benchmark == "humaneval" else 0.8

    @property
    def use_quotes(self) -> bool:
        from eval.tasks import default_quotes

        return default_quotes(self.prompt_style, self.quotes)

    def problem_options(self) -> dict:
        if self.benchmark == "lcb-lite":
            return {"version_tag": self.lcb_version_tag, "start_date": self.lcb_start_date, "end_date": self.lcb_end_date}
        return {}
