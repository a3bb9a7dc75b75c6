"""Small numeric and dictionary utilities: the offline demo's seed corpus (written for this project)."""


def digit_product(n):
    """Return the product of the non-zero decimal digits of the integer `n` (sign ignored).
    >>> digit_product(3405)
    >>> digit_product(-7)
    """
    n = abs(n)
    product = 1
    while n > 0:
        d = n % 10
        if d != 0:
            product *= d
        n //= 10
    return product


def collatz_steps(n, cap):
    """Count Collatz steps (n -> n/2 if even, else 3n+1) until `n` reaches 1, stopping at `cap` steps.
    >>> collatz_steps(6, 100)
    >>> collatz_steps(27, 10)
    """
    steps = 0
    while n != 1 and steps < cap:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def to_base(n, base):
    """Write the non-negative integer `n` in `base` (2..10) as a string of digits.
    >>> to_base(10, 2)
    >>> to_base(0, 7)
    """
    if n == 0:
        return "0"
    digits = ""
    while n > 0:
        digits = str(n % base) + digits
        n //= base
    return digits


def invert_grades(grades):
    """Given a dict from student to grade letter, return a dict from grade letter to the sorted
    list of students who got it.
    >>> invert_grades({"ann": "A", "bob": "B", "cid": "A"})
    >>> invert_grades({})
    """
    by_grade = {}
    for student, grade in grades.items():
        by_grade.setdefault(grade, []).append(student)
    for grade in by_grade:
        by_grade[grade].sort()
    return by_grade


def merge_counts(first, second):
    """Add up two dicts of counts key by key and drop keys whose total is zero.
    >>> merge_counts({"a": 2, "b": 1}, {"b": -1, "c": 4})
    >>> merge_counts({}, {"x": 0})
    """
    total = dict(first)
    for key, value in second.items():
        total[key] = total.get(key, 0) + value
    return {k: v for k, v in total.items() if v != 0}


def clamp_all(values, low, high):
    """Clamp every number of `values` into the closed range [low, high].
    >>> clamp_all([-5, 3, 12], 0, 10)
    >>> clamp_all([4], 4, 4)
    """
    out = []
    for v in values:
        if v < low:
            out.append(low)
        elif v > high:
            out.append(high)
        else:
            out.append(v)
    return out


def stair_count(total_blocks):
    """Return how many complete stair rows (1, 2, 3, ... blocks) can be built from `total_blocks`.
    >>> stair_count(10)
    >>> stair_count(8)
    """
    rows = 0
    needed = 1
    while total_blocks >= needed:
        total_blocks -= needed
        rows += 1
        needed += 1
    return rows


def key_with_max_value(scores):
    """Return the key with the largest value in `scores`; ties go to the smallest key; None if empty.
    >>> key_with_max_value({"b": 3, "a": 3, "c": 1})
    >>> key_with_max_value({})
    """
    best_key = None
    for key in sorted(scores):
        if best_key is None or scores[key] > scores[best_key]:
            best_key = key
    return best_key


def sum_of_multiples(limit, divisors):
    """Sum the distinct numbers below `limit` divisible by at least one of `divisors` (zeros ignored).
    >>> sum_of_multiples(20, [3, 5])
    >>> sum_of_multiples(10, [0, 4])
    """
    total = 0
    for n in range(1, limit):
        if any(d != 0 and n % d == 0 for d in divisors):
            total += n
    return total


def run_length_pairs(values):
    """Encode `values` as a list of [value, run length] pairs of consecutive equal elements.
    >>> run_length_pairs([1, 1, 2, 2, 2, 1])
    >>> run_length_pairs([])
    """
    pairs = []
    for v in values:
        if pairs and pairs[-1][0] == v:
            pairs[-1][1] += 1
        else:
            pairs.append([v, 1])
    return pairs


class Counter2D:
    """A grid of counters; a class seed (used by LLM synthesis, not by the offline demo)."""

    def __init__(self, rows, cols):
        self.cells = [[0] * cols for _ in range(rows)]

    def bump(self, r, c):
        self.cells[r][c] += 1
        return self.cells[r][c]
