"""Small list utilities: the offline demo's seed corpus (written for this project)."""


def running_peak(values):
    """Return, for each position of `values`, the largest value seen so far.
    >>> running_peak([3, 1, 4, 1, 5])
    >>> running_peak([])
    """
    peaks = []
    best = None
    for v in values:
        if best is None or v > best:
            best = v
        peaks.append(best)
    return peaks


def chunk_sums(values, size):
    """Split `values` into consecutive chunks of `size` elements (the last may be shorter) and
    return the sum of each chunk.
    >>> chunk_sums([1, 2, 3, 4, 5], 2)
    >>> chunk_sums([7], 3)
    """
    sums = []
    for start in range(0, len(values), size):
        sums.append(sum(values[start:start + size]))
    return sums


def rotate_left(items, k):
    """Rotate the list `items` left by `k` places (k may exceed the length).
    >>> rotate_left([1, 2, 3, 4], 1)
    >>> rotate_left([5, 6], 5)
    """
    if not items:
        return []
    k = k % len(items)
    return items[k:] + items[:k]


def dedupe_keep_last(items):
    """Remove duplicates from `items`, keeping the last occurrence of each value, in order.
    >>> dedupe_keep_last([1, 2, 1, 3, 2])
    >>> dedupe_keep_last(["a"])
    """
    seen = set()
    out = []
    for x in reversed(items):
        if x not in seen:
            seen.add(x)
            out.append(x)
    out.reverse()
    return out


def pairwise_gaps(numbers):
    """Return the differences between consecutive elements of `numbers`.
    >>> pairwise_gaps([2, 5, 9, 10])
    >>> pairwise_gaps([4])
    """
    gaps = []
    for i in range(1, len(numbers)):
        gaps.append(numbers[i] - numbers[i - 1])
    return gaps


def interleave_lists(left, right):
    """Interleave two lists element by element; the rest of the longer list goes at the end.
    >>> interleave_lists([1, 3, 5], [2, 4])
    >>> interleave_lists([], ["x"])
    """
    out = []
    i = 0
    while i < len(left) or i < len(right):
        if i < len(left):
            out.append(left[i])
        if i < len(right):
            out.append(right[i])
        i += 1
    return out


def count_above_mean(values):
    """Return how many elements of `values` are strictly greater than their mean (0 if empty).
    >>> count_above_mean([1, 2, 3, 10])
    >>> count_above_mean([])
    """
    if not values:
        return 0
    mean = sum(values) / len(values)
    return len([v for v in values if v > mean])


def split_by_sign(numbers):
    """Split `numbers` into a tuple (negatives, zeros count, positives), keeping the order.
    >>> split_by_sign([3, -1, 0, -4, 2, 0])
    >>> split_by_sign([])
    """
    neg, pos = [], []
    zeros = 0
    for n in numbers:
        if n < 0:
            neg.append(n)
        elif n == 0:
            zeros += 1
        else:
            pos.append(n)
    return (neg, zeros, pos)


def flatten_once(nested):
    """Flatten one level of nesting: lists inside `nested` are spliced in, other items kept.
    >>> flatten_once([1, [2, 3], [[4]], 5])
    >>> flatten_once([[], []])
    """
    flat = []
    for item in nested:
        if isinstance(item, list):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def window_max_sum(values, width):
    """Return the largest sum of `width` consecutive elements of `values` (None if too short).
    >>> window_max_sum([1, -2, 3, 4, -1], 2)
    >>> window_max_sum([1], 3)
    """
    if width > len(values) or width <= 0:
        return None
    current = sum(values[:width])
    best = current
    for i in range(width, len(values)):
        current += values[i] - values[i - width]
        best = max(best, current)
    return best
