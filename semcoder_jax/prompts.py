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


def source_lines(code: str) -> list[str]:
    """Lines as Python numbers them (``f_lineno``): ``str.splitlines`` also breaks at form feeds and
    U+2028 (in a string literal, say), which would shift every later line."""
    lines = code.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def label_lines(code: str, offset: int = LINE_LABEL_OFFSET) -> str:
    """Suffix each non-blank line ``i`` (counting from 1) with ``# [L{i+offset}]``."""
    out = []
    for i, line in enumerate(source_lines(code), start=1):
        out.append(f"{line} # [L{i + offset}]" if line.strip() else line)
    return "\n".join(out)


def execution_instruction(code: str, *, input: str | None = None, output: str | None = None, labelled: bool = True) -> str:
    """``[PYTHON]`` block of a forward (``input`` given) or backward (``output`` given) record."""
    if (input is None) == (output is None):
        raise ValueError("give exactly one of input (forward) or output (backward)")
    body = label_lines(code) if labelled else code
    question = f"assert f({input}) == ??" if input is not None else f"assert f(??) == {output}"
    return f"[PYTHON]\n{body}\n{question}\n[/PYTHON]"


# ---------------------------------------------------------------------------------------------
# Evaluation prompts (``eval``). SemCoder's formats first, then the official baseline prompts of
# CRUXEval (facebookresearch/cruxeval prompts.py) and LiveCodeBench (lcb_runner/prompts).
# ---------------------------------------------------------------------------------------------

MONOLOGUE_TAG = "[MONOLOGUE]\n"
ANSWER_STOP = "[/ANSWER]"


def double_quotes(text: str) -> str:
    """SemCoder's quote handling: its monologue data uses double quotes, so prompts do too."""
    return text.replace("'", '"')


def nl2code_humaneval(prompt: str) -> tuple[str, str]:
    """(instruction, response prefix) of SemCoder's HumanEval(+) prompt; the model continues the code."""
    prompt = prompt.strip()
    instruction = f"Write a solution to the following problem:\n```python\n{prompt}\n```"
    return instruction, f"```python\n{prompt}"


def nl2code_mbpp(prompt: str) -> tuple[str, str]:
    """(instruction, response prefix) of SemCoder's MBPP(+) prompt, from EvalPlus's docstring prompt."""
    body = prompt[prompt.index('"""') + 3 : prompt.rindex('"""')]
    at = body.index("assert")
    instruction = body[:at].strip()
    if not instruction.endswith("."):
        instruction += "."
    assertion = body[at:].strip()
    instruction = f"{instruction} Your code should satisfy the following assertion:\n```python\n{assertion}\n```"
    return instruction, "```python"


def nl2code_prompt(instruction: str, response_prefix: str = "") -> str:
    return render("nl2code", instruction, response_prefix)


def cruxeval_output_prompt(code: str, input: str, *, style: str = "semcoder", quotes: bool = True) -> str:
    """CRUXEval-O: predict ``f(input)``. ``style``: semcoder (forward monologue), direct or cot."""
    if quotes:
        code, input = double_quotes(code), double_quotes(input)
    if style == "semcoder":
        return render("forward", execution_instruction(code, input=input)) + MONOLOGUE_TAG
    if style == "direct":
        return CRUXEVAL_DIRECT_OUTPUT.format(code=code, input=input)
    if style == "cot":
        return CRUXEVAL_COT_OUTPUT.format(code=code, input=input)
    raise ValueError(f"unknown CRUXEval prompt style {style!r}; expected semcoder, direct or cot")


def cruxeval_input_prompt(code: str, output: str, *, style: str = "semcoder", quotes: bool = True) -> str:
    """CRUXEval-I: find an input with ``f(??) == output``."""
    if quotes:
        code, output = double_quotes(code), double_quotes(output)
    if style == "semcoder":
        return render("backward", execution_instruction(code, output=output, labelled=False)) + MONOLOGUE_TAG
    if style == "direct":
        return CRUXEVAL_DIRECT_INPUT.format(code=code, output=output)
    if style == "cot":
        return CRUXEVAL_COT_INPUT.format(code=code, output=output)
    raise ValueError(f"unknown CRUXEval prompt style {style!r}; expected semcoder, direct or cot")


def lcb_execution_prompt(code: str, call: str, *, style: str = "semcoder", quotes: bool = True) -> str:
    """LCB-Exec: ``call`` is the full call, e.g. ``f(nums = [1, 2])``."""
    if quotes:
        code, call = double_quotes(code), double_quotes(call)
    if style == "semcoder":
        instruction = f"[PYTHON]\n{label_lines(code)}\nassert {call} == ??\n[/PYTHON]"
        return render("forward", instruction) + MONOLOGUE_TAG
    if style == "direct":
        return LCB_DIRECT_OUTPUT.format(code=code, input=call)
    if style == "cot":
        return LCB_COT_OUTPUT.format(code=code, input=call)
    raise ValueError(f"unknown LCB execution prompt style {style!r}; expected semcoder, direct or cot")


def lcb_generation_prompt(question: str, starter_code: str = "", *, style: str = "semcoder") -> str:
    """LiveCodeBench code generation: SemCoder's NL→code template or LCB's generic prompt."""
    if style == "semcoder":
        if starter_code:
            fmt = f"{LCB_FORMAT_WITH_STARTER}\n```python\n{starter_code}\n```"
        else:
            fmt = f"{LCB_FORMAT_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```"
        return nl2code_prompt(f"{question}\n\n{fmt}", "```python\n")
    if style == "generic":
        prompt = f"{LCB_SYSTEM_GENERIC}\n\n### Question:\n{question}\n\n"
        if starter_code:
            prompt += f"### Format: {LCB_FORMAT_WITH_STARTER}\n```python\n{starter_code}\n```\n\n"
        else:
            prompt += f"### Format: {LCB_FORMAT_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
        return prompt + "### Answer: (use the provided format with backticks)\n\n"
    raise ValueError(f"unknown LCB generation prompt style {style!r}; expected semcoder or generic")


def refine_instruction(problem: str, buggy: str, failed_test: str) -> str:
    """The PYX-R instruction, for training records and self-refinement alike: the layout of SemCoder's
    ``run_refine_evalplus.py`` (with its closing newline), so evaluation asks what training taught."""
    return (f"### Problem\n{problem}\n\n### Buggy Solution\n```python\n{buggy}\n```\n\n"
            f"### Failed Test\n```python\n{failed_test}\n```\n")


def extract_answer(generation: str, mode: str) -> str:
    """The answer of a CRUXEval/LCB-Exec generation, as the official post-processing extracts it.

    ``mode="output"``: the right-hand side of the ``==`` in ``[ANSWER] assert f(x) == y``;
    ``mode="input"``: the left-hand side without ``assert``, i.e. ``f(x)``.
    """
    text = generation.split(ANSWER_STOP)[0]
    if "[ANSWER]" in text:
        text = text.split("[ANSWER]")[1].strip()
    if mode == "output":
        if "==" in text:
            text = text.split("==")[1].strip()
    elif mode == "input":
        if "==" in text:
            text = text.split("==")[0].strip()
        if "assert" in text:
            text = text.split("assert")[1].strip()
    else:
        raise ValueError(f"mode must be 'input' or 'output', got {mode!r}")
    return text.strip()


CRUXEVAL_DIRECT_OUTPUT = '''You are given a Python function and an assertion containing an input to the function. Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any extra information. Provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def f(n):
    return n
assert f(17) == ??
[/PYTHON]
[ANSWER]
assert f(17) == 17
[/ANSWER]

[PYTHON]
def f(s):
    return s + "a"
assert f("x9j") == ??
[/PYTHON]
[ANSWER]
assert f("x9j") == "x9ja"
[/ANSWER]

[PYTHON]
{code}
assert f({input}) == ??
[/PYTHON]
[ANSWER]
'''

CRUXEVAL_COT_OUTPUT = '''You are given a Python function and an assertion containing an input to the function. Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any extra information. Execute the program step by step before arriving at an answer, and provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def f(s):
    s = s + s
    return "b" + s + "a"
assert f("hi") == ??
[/PYTHON]
[THOUGHT]
Let's execute the code step by step:

1. The function f is defined, which takes a single argument s.
2. The function is called with the argument "hi", so within the function, s is initially "hi".
3. Inside the function, s is concatenated with itself, so s becomes "hihi".
4. The function then returns a new string that starts with "b", followed by the value of s (which is now "hihi"), and ends with "a".
5. The return value of the function is therefore "bhihia".
[/THOUGHT]
[ANSWER]
assert f("hi") == "bhihia"
[/ANSWER]

[PYTHON]
{code}
assert f({input}) == ??
[/PYTHON]
[THOUGHT]
'''

CRUXEVAL_DIRECT_INPUT = '''You will be given a function f and an output in the form f(??) == output. Find any input such that executing f on the input leads to the given output. There may be multiple answers, but you should only output one. In [ANSWER] and [/ANSWER] tags, complete the assertion with one such input that will produce the output when executing the function.

[PYTHON]
def f(my_list):
    count = 0
    for i in my_list:
        if len(i) % 2 == 0:
            count += 1
    return count
assert f(??) == 3
[/PYTHON]
[ANSWER]
assert f(["mq", "px", "zy"]) == 3
[/ANSWER]

[PYTHON]
def f(s1, s2):
    return s1 + s2
assert f(??) == "banana"
[/PYTHON]
[ANSWER]
assert f("ba", "nana") == "banana"
[/ANSWER]

[PYTHON]
{code}
assert f(??) == {output}
[/PYTHON]
[ANSWER]
'''

CRUXEVAL_COT_INPUT = '''You will be given a function f and an output in the form f(??) == output. Your task is to find any input such that executing f on the input leads to the given output. There may be multiple answers, but only output one. First, think step by step. You MUST surround the answer with [ANSWER] and [/ANSWER] tags. Express your answer as a passing assertion containing the input and the given output.

[PYTHON]
def f(x):
    return x + 1
assert f(??) == 17
[/PYTHON]
[THOUGHT]
To find an input such that executing f on the input leads to the given output, we can work backwards from the given assertion. We know that f(??) == 17. 

Since the function f(x) returns x + 1, for f(??) to be equal to 17, the value of ?? should be 16. 
[/THOUGHT]
[ANSWER]
assert f(16) == 17
[/ANSWER]

[PYTHON]
{code}
assert f(??) == {output}
[/PYTHON]
[THOUGHT]
'''

LCB_DIRECT_OUTPUT = '''You are given a Python function and an assertion containing an input to the function. Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any extra information. Provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def repeatNumber(number : int) -> int:
    return number
assert repeatNumber(number = 17) == ??
[/PYTHON]
[ANSWER]
assert repeatNumber(number = 17) == 17
[/ANSWER]

[PYTHON]
def addCharacterA(string : str) -> str:
    return string + "a"
assert addCharacterA(string = "x9j") == ??
[/PYTHON]
[ANSWER]
assert addCharacterA(string = "x9j") == "x9ja"
[/ANSWER]

[PYTHON]
{code}
assert {input} == ??
[/PYTHON]
[ANSWER]
'''

LCB_COT_OUTPUT = '''You are given a Python function and an assertion containing an input to the function. Complete the assertion with a literal (no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, even if the function is incorrect or incomplete. Do NOT output any extra information. Execute the program step by step before arriving at an answer, and provide the full assertion with the correct output in [ANSWER] and [/ANSWER] tags, following the examples.

[PYTHON]
def performOperation(s):
    s = s + s
    return "b" + s + "a"
assert performOperation(s = "hi") == ??
[/PYTHON]
[THOUGHT]
Let's execute the code step by step:

1. The function performOperation is defined, which takes a single argument s.
2. The function is called with the argument "hi", so within the function, s is initially "hi".
3. Inside the function, s is concatenated with itself, so s becomes "hihi".
4. The function then returns a new string that starts with "b", followed by the value of s (which is now "hihi"), and ends with "a".
5. The return value of the function is therefore "bhihia".
[/THOUGHT]
[ANSWER]
assert performOperation(s = "hi") == "bhihia"
[/ANSWER]

[PYTHON]
{code}
assert {input} == ??
[/PYTHON]
[THOUGHT]
'''

LCB_SYSTEM_GENERIC = (
    "You are an expert Python programmer. You will be given a question (problem specification) and will "
    "generate a correct Python program that matches the specification and passes all tests. You will NOT "
    "return anything except for the program."
)
LCB_FORMAT_WITH_STARTER = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)
LCB_FORMAT_WITHOUT_STARTER = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
    "the sample inputs). Enclose your code within delimiters as follows."
)
