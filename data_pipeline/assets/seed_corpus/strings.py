"""Small string utilities: the offline demo's seed corpus (written for this project)."""


def squeeze_runs(text, limit):
    """Shorten every run of one repeated character in `text` to at most `limit` characters.
    >>> squeeze_runs("aaabccccd", 2)
    >>> squeeze_runs("zz", 1)
    """
    out = []
    run = 0
    for i, ch in enumerate(text):
        run = run + 1 if i > 0 and text[i - 1] == ch else 1
        if run <= limit:
            out.append(ch)
    return "".join(out)


def vowel_positions(word):
    """Return the indices of the vowels (a, e, i, o, u, either case) in `word`.
    >>> vowel_positions("Orbital")
    >>> vowel_positions("xyz")
    """
    found = []
    for idx, ch in enumerate(word):
        if ch.lower() in "aeiou":
            found.append(idx)
    return found


def caesar_words(sentence, shift):
    """Shift the lowercase letters of each word in `sentence` by `shift` places in the alphabet,
    wrapping around, and keep other characters unchanged.
    >>> caesar_words("hello world", 3)
    >>> caesar_words("az-by", 1)
    """
    result = ""
    for ch in sentence:
        if "a" <= ch <= "z":
            result += chr((ord(ch) - ord("a") + shift) % 26 + ord("a"))
        else:
            result += ch
    return result


def initials_upper(name):
    """Return the uppercase initials of the space-separated parts of `name`, joined by dots.
    >>> initials_upper("ada lovelace byron")
    >>> initials_upper("  grace   hopper ")
    """
    parts = [p for p in name.split(" ") if p]
    letters = [p[0].upper() for p in parts]
    return ".".join(letters)


def balance_brackets(text):
    """Count how many '(' must be added to the front and ')' to the end of `text` so that the
    parentheses in it are balanced; return both counts as a tuple.
    >>> balance_brackets("())(")
    >>> balance_brackets("(()")
    """
    opened = 0
    missing_open = 0
    for ch in text:
        if ch == "(":
            opened += 1
        elif ch == ")":
            if opened > 0:
                opened -= 1
            else:
                missing_open += 1
    return (missing_open, opened)


def swap_halves(text):
    """Swap the first and second half of `text`; with an odd length the middle character stays.
    >>> swap_halves("abcdef")
    >>> swap_halves("abcde")
    """
    half = len(text) // 2
    if len(text) % 2 == 0:
        return text[half:] + text[:half]
    return text[half + 1:] + text[half] + text[:half]


def count_word_lengths(sentence):
    """Map each word length in `sentence` to how many words have that length.
    >>> count_word_lengths("the cat sat on a mat")
    >>> count_word_lengths("")
    """
    counts = {}
    for word in sentence.split():
        counts[len(word)] = counts.get(len(word), 0) + 1
    return counts


def mask_digits(code, keep):
    """Replace every digit of `code` by '#' except the last `keep` digits.
    >>> mask_digits("4111-2222-3333", 4)
    >>> mask_digits("a1b2", 5)
    """
    total = sum(ch.isdigit() for ch in code)
    seen = 0
    out = []
    for ch in code:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > total - keep else "#")
        else:
            out.append(ch)
    return "".join(out)


def alternate_case(text, start_upper):
    """Alternate the case of the letters of `text`, starting with upper case when `start_upper`.
    Non-letters are kept and do not advance the alternation.
    >>> alternate_case("hello there", True)
    >>> alternate_case("a-b-c", False)
    """
    upper = start_upper
    out = ""
    for ch in text:
        if ch.isalpha():
            out += ch.upper() if upper else ch.lower()
            upper = not upper
        else:
            out += ch
    return out


def longest_common_prefix_len(first, second):
    """Return the length of the longest common prefix of the strings `first` and `second`.
    >>> longest_common_prefix_len("interval", "internet")
    >>> longest_common_prefix_len("abc", "xyz")
    """
    n = 0
    while n < len(first) and n < len(second) and first[n] == second[n]:
        n += 1
    return n
