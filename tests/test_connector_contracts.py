"""What the connector and the workers agree on, beyond the message models: how a phone number is written."""

from __future__ import annotations

import pytest

from connector.contracts import phone_digits
from connector.sandbox import SandboxError, normalize_phone


@pytest.mark.parametrize(("written", "digits"), [
    ("5511987654321", "5511987654321"),
    ("+55 (11) 98765-4321", "5511987654321"),
    ("tel:+55 11 98765-4321", "5511987654321"),
    ("5511987654321@s.whatsapp.net", "5511987654321"),
    ("5511987654321:12@s.whatsapp.net", "5511987654321"),  # a device of the account: the account
    ("５５１１９８７６５４３２１", ""),  # full-width digits are digits to str.isdigit, not to WhatsApp
    ("", ""),
    (None, ""),
])
def test_one_phone_normaliser_for_every_side(written, digits):
    assert phone_digits(written) == digits


def test_the_sandbox_refuses_what_is_left_too_short():
    assert normalize_phone("+55 11 99000-0001") == "5511990000001"
    with pytest.raises(SandboxError, match="not a phone number"):
        normalize_phone("+55 1")
