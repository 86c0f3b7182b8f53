"""`even_chunk`: the steps per dispatch that cut a run into chunks of one length."""


def even_chunk(size: int, most: int = 250) -> int:
    """The largest divisor of ``size`` up to ``most``, so that every chunk of a run of
    ``size`` steps (or of its intervals of ``size``) has one length: one compile. When
    that divisor is small (257 has only 1), ``most`` instead (``size`` where smaller): a
    last, shorter chunk costs one compile more, where one step per dispatch would cost
    every step a dispatch.

    Examples:
      >>> even_chunk(1000), even_chunk(600), even_chunk(257), even_chunk(40), even_chunk(100, 30)
      (250, 200, 250, 40, 25)
    """
    cap = min(size, most)
    divisor = max(d for d in range(1, cap + 1) if size % d == 0)
    return divisor if 4 * divisor >= cap else cap
