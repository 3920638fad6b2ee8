from __future__ import annotations

import pytest

from ezmsg_lab.runtime.server import Address, is_loopback, parse_address


@pytest.mark.parametrize(
    "value, expected",
    [
        ("127.0.0.1:25978", Address("127.0.0.1", 25978)),
        (" localhost:1 ", Address("localhost", 1)),
        (("10.0.0.2", 80), Address("10.0.0.2", 80)),
        ("::1:5000", Address("::1", 5000)),
    ],
)
def test_parse(value, expected):
    assert parse_address(value) == expected
    assert str(parse_address(value)) == f"{expected.host}:{expected.port}"


@pytest.mark.parametrize(
    "value, message",
    [
        ("25978", "host:port"),
        (":25978", "host:port"),
        ("host:abc", "not a number"),
        ("host:70000", "0..65535"),
        (("a", 1, 2), "(host, port)"),
    ],
)
def test_bad_addresses_say_what_is_expected(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_address(value)


def test_type_error():
    with pytest.raises(TypeError):
        parse_address(25978)


def test_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
