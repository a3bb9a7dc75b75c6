"""Every prompt the project writes or reads: SemCoder's training templates, verbatim, and the
evaluation prompts built from them. Data (``data_pipeline``) and evaluation (``eval``) both import
this module, so a checkpoint trained here and the released SemCoder models see the same text.
"""

from __future__ import annotations

NL2CODE_TEMPLATE = (
    "You are an exceptionally intelligent coding assistant that consistently delivers accurate and "
    "reliable <Code> according to <NL_Description>\n\n<NL_Description>\n{instruction}\n\n<Code>\n{response}"
)

FORWARD_TEMPLATE = (
    "Simulate the Execution: You are given a Python function and an assertion containing a function "
    "input. Complete the assertion containing the execution output corresponding to the given input in "
    "[ANSWER] and [/ANSWER] tags.\n{instruction}\n{response}"
)

BACKWARD_TEMPLATE = (
    "Deduce the Semantic Constraints: You are given a Python program and its expected output. Find one "
    "input such that executing the program with the input leads to the given output. Complete the "
    "assertion with one such input in between [ANSWER] and [/ANSWER].\n{instruction}\n{response}"
)

# Verbatim from SemCoder, including "a a" and the space before the second newline.
REFINE_TEMPLATE = (
    "Debug and Refine the Code: You are given a a problem to be implemented in Python, and a buggy code "
    "that tries to solve the problem but fails the test case.\nYou should firstly simulate the execution "
    "with the buggy code and the failed test to identify the root cause of the failure. \nThen, you "
    "should fix the bug and wrap the refined code in between [Refined] and [/Refined].\n{instruction}\n{response}"
)

TEMPLATES = {
    "nl2code": NL2CODE_TEMPLATE,
    "forward": FORWARD_TEMPLATE,
    "backward": BACKWARD_TEMPLATE,
    "refine": REFINE_TEMPLATE,
}

# SemCoder's released evaluation prompts number code lines from 5: the template's own lines come first.
LINE_LABEL_OFFSET = 4


def render(kind: str, instruction: str, response: str = "") -> str:
    """The full text of a record; with ``response=""`` this is the prompt."""
    try:
        template = TEMPLATES[kind]
    except KeyError:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(TEMPLATES)}") from None
    return template.format(instruction=instruction, response=response)


def label_lines(code: str, offset: int = LINE_LABEL_OFFSET) -> str:
    """Suffix each non-blank line ``i`` (counting from 1) with ``# [L{i+offset}]``."""
    out = []
    for i, line in enumerate(code.splitlines(), start=1):
        out.append(f"{line} # [L{i + offset}]" if line.strip() else line)
    return "\n".join(out)


def execution_instruction(code: str, *, input: str | None = None, output: str | None = None, labelled: bool = True) -> str:
    """``[PYTHON]`` block of a forward (``input`` given) or backward (``output`` given) record."""
    if (input is None) == (output is None):
        raise ValueError("give exactly one of input (forward) or output (backward)")
    body = label_lines(code) if labelled else code
    question = f"assert f({input}) == ??" if input is not None else f"assert f(??) == {output}"
    return f"[PYTHON]\n{body}\n{question}\n[/PYTHON]"
