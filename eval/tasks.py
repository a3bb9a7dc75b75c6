"""Per benchmark: the prompt a problem becomes, where generation stops, and what a completion turns
into before scoring (a complete program or an extracted answer)."""

from __future__ import annotations

from typing import Any, Sequence

from semcoder_jax import prompts as P

PROMPT_STYLES = {
    "humaneval": ("semcoder", "plain"),
    "mbpp": ("semcoder", "plain"),
    "cruxeval-i": ("semcoder", "direct", "cot"),
    "cruxeval-o": ("semcoder", "direct", "cot"),
    "lcb-exec": ("semcoder", "direct", "cot"),
    "lcb-lite": ("semcoder", "generic"),
}

# Stops for plain completion of a HumanEval/MBPP prompt by a base model: EvalPlus 0.3.1's codegen
# stops (provider/utility.py ``EOS + extra_eos_for_direct_completion``), so a HumanEval completion
# ends at the next top-level definition as it does there.
_EVALPLUS_EOS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
PLAIN_CODE_STOPS = {
    "humaneval": _EVALPLUS_EOS + ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "),
    "mbpp": _EVALPLUS_EOS + ('\n"""', "\nassert"),
}

# lcb_runner's default ``--stop``: a base model's next "### Question" never reaches extract_code.
LCB_STOPS = ("###",)


def check_style(benchmark: str, style: str) -> None:
    if style not in PROMPT_STYLES[benchmark]:
        raise ValueError(f"prompt style {style!r} is not available for {benchmark}; choose from {', '.join(PROMPT_STYLES[benchmark])}")


def build_prompt(benchmark: str, problem: Any, style: str = "semcoder", quotes: bool = True) -> str:
    check_style(benchmark, style)
    if benchmark in ("humaneval", "mbpp"):
        if style == "plain":
            return plain_prompt(problem)
        build = P.nl2code_humaneval if benchmark == "humaneval" else P.nl2code_mbpp
        return P.nl2code_prompt(*build(problem.prompt))
    if benchmark == "cruxeval-o":
        return P.cruxeval_output_prompt(problem.code, problem.input, style=style, quotes=quotes)
    if benchmark == "cruxeval-i":
        return P.cruxeval_input_prompt(problem.code, problem.output, style=style, quotes=quotes)
    if benchmark == "lcb-exec":
        return P.lcb_execution_prompt(problem.code, problem.input, style=style, quotes=quotes)
    return P.lcb_generation_prompt(problem.question_content, problem.starter_code, style=style)


def plain_prompt(problem: Any) -> str:
    """A base model's HumanEval/MBPP prompt as EvalPlus 0.3.1's codegen gives it (``prompt.strip() + "\\n"``:
    141 HumanEval prompts start with blank lines, which change what a base model writes)."""
    return problem.prompt.strip() + "\n"


def stop_strings(benchmark: str, style: str = "semcoder") -> tuple[str, ...]:
    if benchmark in ("humaneval", "mbpp"):
        return ("```",) if style == "semcoder" else PLAIN_CODE_STOPS[benchmark]
    if benchmark == "lcb-lite":
        return ("```",) if style == "semcoder" else LCB_STOPS
    return (P.ANSWER_STOP,)


def default_quotes(style: str, quotes: bool | None = None) -> bool:
    """SemCoder's quote handling (double quotes in the prompt, answers read back with single ones):
    on for its own prompts unless set, as its monologue data taught the model double quotes."""
    return style == "semcoder" if quotes is None else quotes


def to_sample(benchmark: str, problem: Any, completion: str, style: str = "semcoder", quotes: bool = True, sanitize: bool = True) -> str:
    """What the scorer executes for one completion (``eval run`` and ``eval score`` alike)."""
    if benchmark in ("humaneval", "mbpp"):
        from eval.scoring.sanitize import sanitize as _sanitize

        head = plain_prompt(problem) if style == "plain" else problem.prompt  # the text the model continued
        program = head + completion.split("```")[0]
        return _sanitize(program, problem.entry_point) if sanitize else program
    if benchmark == "lcb-lite":
        if style == "semcoder":
            return completion.split("```")[0]
        from eval.scoring.livecodebench import extract_code

        return extract_code(completion)
    if benchmark == "lcb-exec":
        from eval.scoring.execution_prediction import extract_lcb_execution_answer

        cot = style != "direct"
        # Generation stops at [/ANSWER] and leaves it out; lcb_runner generates past it and reads it.
        # The backend's finish reason says whether the stop string ended it; the text, where it cannot tell.
        reason = getattr(completion, "finish_reason", None)
        closed = reason == "stop" if reason is not None else _closed_by_stop(completion, cot)
        if P.ANSWER_STOP not in completion and closed:
            completion += P.ANSWER_STOP
        answer = extract_lcb_execution_answer(completion, cot=cot)
    else:
        answer = P.extract_answer(completion, "input" if benchmark == "cruxeval-i" else "output")
    if quotes:  # the prompt had double quotes; the benchmark's literals use single ones (SemCoder's process_cruxeval.py)
        answer = answer.replace('"', "'")
    return answer


def _closed_by_stop(completion: str, cot: bool) -> bool:
    """Whether a completion cut before its first ``[/ANSWER]`` ended there rather than at the token
    limit (or EOS), where lcb_runner finds no closing tag and reads the answer's first line only,
    for completions whose backend could not say why it stopped (no ``finish_reason``: an OpenAI
    server other than vLLM's, a samples file without it): an answer closed as the prompts' examples
    close theirs ends with the line break before the tag and, after a chain of thought, holds the
    ``[ANSWER]`` it closes."""
    return completion.endswith("\n") and (not cot or "[ANSWER]" in completion)


def task_ids(problems: Sequence[Any]) -> list[str]:
    return [p.task_id for p in problems]
