"""Sign ``resources/catalog.json`` for publication: writes ``resources/catalog.json.sig`` (base64 Ed25519).

    python scripts/sign_catalog.py --key PATH            # PATH holds the private key as 64 hex digits
    python scripts/sign_catalog.py --new-key PATH        # make a key pair; prints the public key for
                                                         #   resources/catalog-source.json

Haven accepts a refreshed catalog only with a signature by the public key in
``resources/catalog-source.json`` (assistant/models/catalog_refresh.py). Keep the private key out of the
repository (a release secret). Needs the ``cryptography`` package (a development tool only).
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--key", type=Path)
    group.add_argument("--new-key", type=Path)
    parser.add_argument("--catalog", type=Path, default=ROOT / "resources" / "catalog.json")
    args = parser.parse_args()
    if args.new_key:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        args.new_key.write_text(raw.hex() + "\n")
        os.chmod(args.new_key, 0o600)
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        print(public.hex())
        return 0
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(args.key.read_text().strip()))
    signature = key.sign(args.catalog.read_bytes())
    target = args.catalog.with_name(args.catalog.name + ".sig")
    target.write_text(base64.b64encode(signature).decode() + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
