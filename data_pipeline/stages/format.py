"""Formatted training records: SemCoder's templates with the response as the target.

Each built problem becomes one ``nl2code`` record, its ``forward``/``backward`` monologues and its
``refine`` (PYX-R) records, all with the problem's id in ``problem_id`` (the key that keeps a
problem's records in one split, see ``data_pipeline/splits.py``). Prompt = template with an empty
response.
"""

from __future__ import annotations

from typing import Any

from semcoder_jax import prompts

KINDS = ("nl2code", "forward", "backward", "refine")
SOURCES = {"nl2code": "pyx", "forward": "pyx", "backward": "pyx", "refine": "pyx-r"}


def formatted(rid: str, kind: str, instruction: str, response: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "kind": kind, "source": extra.pop("source", SOURCES[kind]), "prompt": prompts.render(kind, instruction),
            "response": response, **extra}


def format_problem(record: dict[str, Any]) -> list[dict[str, Any]]:
    pid = record["id"]
    out = [formatted(f"{pid}-nl2code", "nl2code", record["problem"], record["response"], problem_id=pid)]
    for kind in ("forward", "backward"):
        for i, item in enumerate(record.get(kind, [])):
            side = {"input": item["input"]} if kind == "forward" else {"output": item["output"]}
            instruction = prompts.execution_instruction(record["code"], **side)
            out.append(formatted(f"{pid}-{kind}-{i}", kind, instruction, item["response"],
                                 code=record["code"], input=item["input"], output=item["output"], problem_id=pid))
    for i, item in enumerate(record.get("refine", [])):
        instruction = prompts.refine_instruction(record["problem"], item["buggy"], item["failed_test"])
        out.append(formatted(f"{pid}-refine-{i}", "refine", instruction, item["response"], problem_id=pid))
    return out
