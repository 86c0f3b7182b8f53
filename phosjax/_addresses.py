"""IP addresses told apart from host names (the viewer's ``--host``, a bench's
``--coordinator``), without importing jax: the viewer must not."""

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_address(host: str) -> IPAddress | None:
    """``host`` as an IP address, None where it is none (a host name).

    Examples:
      >>> ip_address("::1"), ip_address("127.0.0.2"), ip_address("node0")
      (IPv6Address('::1'), IPv4Address('127.0.0.2'), None)
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
