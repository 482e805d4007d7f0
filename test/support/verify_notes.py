#!/usr/bin/env python3
"""Checks the signed checkpoints that `e2ekv vault info NAME --json` prints, as
an outside auditor would: a second implementation, in another language, of C2SP
signed notes (c2sp.org/signed-note), checkpoints (c2sp.org/tlog-checkpoint),
Ed25519 cosignatures (c2sp.org/tlog-cosignature, v1) and verifier keys, written
from those specifications and protocol/SPEC.md sections 10 to 12. It imports
nothing of e2ekv and uses only the standard library and the `cryptography`
package's Ed25519.

Reads the JSON on stdin and checks:
  - every replica's cosigner vkey (type 0x04) and every log's device vkey
    (type 0x01, named by the origin e2ekv/v1/<vault id>/<device key>, whose key
    is the device key): well formed, and the key ID is the hash it must be;
  - every log's checkpoint note: strict signed-note syntax; a checkpoint body
    of exactly origin, size and root matching the listed size and root; the
    device's Ed25519 signature (required) under the listed device vkey; and
    every cosignature under the listed replica vkey with its key name and key
    ID, over "cosignature/v1\\ntime <t>\\n" + body with the timestamp t taken
    from the signature, which must be the listed time;
  - every evidence record: both notes signed by the device, and contradicting
    each other (the same size with two roots, or a smaller size: a rollback).

Prints one line per check and exits 0 when all pass, 1 when one fails (each
failure on a line starting with FAIL), 2 when the input is not what vault info
prints. Usage: e2ekv vault info NAME --json | python3 test/support/verify_notes.py
"""
import base64
import hashlib
import json
import re
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIG_ED25519 = 0x01
SIG_COSIGNATURE_V1 = 0x04
MAX_NOTE_BYTES = 16384
MAX_SIGNATURES = 32
MAX_I64 = 2**63 - 1
EM_DASH_PREFIX = "\u2014 "
HEX64 = re.compile(r"^[0-9a-f]{64}$")
DECIMAL = re.compile(r"^(0|[1-9][0-9]*)$")


class Bad(Exception):
    """One check failed; the message says which and why."""


def b64decode_canonical(text, what):
    """RFC 4648 section 4 base64, padded, with zero trailing bits: one encoding per byte string."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as error:
        raise Bad(f"{what} is not base64: {error}")
    if base64.b64encode(raw).decode("ascii") != text:
        raise Bad(f"{what} is not canonical base64")
    return raw


def check_key_name(name, what):
    if name == "":
        raise Bad(f"{what} is empty")
    if len(name.encode("utf-8")) > 256:
        raise Bad(f"{what} is longer than 256 bytes")
    for ch in name:
        # Unicode spaces (str.isspace is White_Space), plus and controls are not allowed in key names.
        if ch == "+" or ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise Bad(f"{what} {name!r} contains {ch!r}, which a key name must not")


def key_id(name, sig_type, public_key):
    """SHA-256(key name || 0x0A || signature type || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key).digest()
    return struct.unpack(">I", digest[:4])[0]


def parse_vkey(vkey, sig_type, what):
    """<name>+<8 lowercase hex key ID>+<base64(type || key)>, with the ID recomputed."""
    if not isinstance(vkey, str):
        raise Bad(f"{what} is not a string")
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise Bad(f"{what} is not <name>+<key ID>+<key>")
    name, hex_id, material_b64 = parts
    check_key_name(name, f"{what} name")
    if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
        raise Bad(f"{what} key ID {hex_id!r} is not 8 lowercase hex digits")
    material = b64decode_canonical(material_b64, f"{what} key")
    if len(material) != 33 or material[0] != sig_type:
        raise Bad(f"{what} is not a type 0x{sig_type:02x} key of 32 bytes")
    public_key = material[1:]
    if key_id(name, sig_type, public_key) != int(hex_id, 16):
        raise Bad(f"{what} key ID {hex_id} is not the hash of its name and key")
    return {"name": name, "id": int(hex_id, 16), "key": public_key, "vkey": vkey}


def parse_note(note, what):
    """Splits a signed note into its text and signature lines, refusing anything C2SP or SPEC.md 10 refuse."""
    if not isinstance(note, str):
        raise Bad(f"{what} is not a string")
    try:
        raw = note.encode("utf-8")
    except UnicodeEncodeError:
        raise Bad(f"{what} is not valid UTF-8 (an unpaired surrogate)")
    if len(raw) > MAX_NOTE_BYTES:
        raise Bad(f"{what} is larger than {MAX_NOTE_BYTES} bytes")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise Bad(f"{what} contains a control character other than newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise Bad(f"{what} has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if block == "" or not block.endswith("\n"):
        raise Bad(f"{what} has no signature lines, or does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise Bad(f"{what} has more than {MAX_SIGNATURES} signatures")
    signatures, seen = [], set()
    for line in lines:
        if not line.startswith(EM_DASH_PREFIX):
            raise Bad(f"{what}: signature line {line!r} does not start with an em dash and a space")
        name, space, blob_b64 = line[len(EM_DASH_PREFIX) :].partition(" ")
        if space == "" or " " in blob_b64:
            raise Bad(f"{what}: signature line {line!r} is not <name> <base64>")
        check_key_name(name, f"{what} signature name")
        blob = b64decode_canonical(blob_b64, f"{what} signature of {name}")
        if len(blob) < 5:
            raise Bad(f"{what}: the signature of {name} is shorter than a key ID and one byte")
        ident = struct.unpack(">I", blob[:4])[0]
        if (name, ident) in seen:
            raise Bad(f"{what} has two signatures by {name} with key ID {ident:08x}")
        seen.add((name, ident))
        signatures.append({"name": name, "id": ident, "sig": blob[4:]})
    return text, signatures


def parse_checkpoint_body(text, what):
    """origin, size and root: exactly three lines (device checkpoints have no extension lines)."""
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise Bad(f"{what} body has {len(lines)} lines, not origin, size and root")
    origin, size_line, root_line = lines
    if not DECIMAL.match(size_line) or int(size_line) > MAX_I64:
        raise Bad(f"{what} size {size_line!r} is not a canonical decimal up to 2^63 - 1")
    root = b64decode_canonical(root_line, f"{what} root")
    if len(root) != 32:
        raise Bad(f"{what} root is {len(root)} bytes, not 32")
    return origin, int(size_line), root


def ed25519_verify(public_key, signature, message):
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except InvalidSignature:
        return False


def verify_device_note(note, device_key, cosigners, what):
    """The device's signature is required; each cosignature by a listed key must verify.

    Returns (origin, size, root, {cosigner name: timestamp}, [names of lines no listed key matches]).
    """
    text, signatures = parse_note(note, what)
    origin, size, root = parse_checkpoint_body(text, what)
    if origin != device_key["name"]:
        raise Bad(f"{what} is a checkpoint of {origin}, not of {device_key['name']}")
    body = text.encode("utf-8")
    device_signed, cosigned, unknown = False, {}, []
    for s in signatures:
        if s["name"] == device_key["name"] and s["id"] == device_key["id"]:
            if len(s["sig"]) != 64:
                raise Bad(f"{what}: the device signature is {len(s['sig'])} bytes, not 64")
            if not ed25519_verify(device_key["key"], s["sig"], body):
                raise Bad(f"{what}: the device signature does not verify under {device_key['vkey']}")
            device_signed = True
            continue
        cosigner = next((c for c in cosigners if c["name"] == s["name"] and c["id"] == s["id"]), None)
        if cosigner is None:
            unknown.append(s["name"])
            continue
        if len(s["sig"]) != 72:
            raise Bad(f"{what}: the cosignature of {s['name']} is {len(s['sig'])} bytes, not 8 + 64")
        timestamp = struct.unpack(">Q", s["sig"][:8])[0]
        if timestamp > MAX_I64:
            raise Bad(f"{what}: the cosignature of {s['name']} has timestamp {timestamp} > 2^63 - 1")
        message = b"cosignature/v1\ntime " + str(timestamp).encode("ascii") + b"\n" + body
        if not ed25519_verify(cosigner["key"], s["sig"][8:], message):
            raise Bad(f"{what}: the cosignature of {s['name']} does not verify under {cosigner['vkey']}")
        cosigned[s["name"]] = timestamp
    if not device_signed:
        raise Bad(f"{what} has no signature by the device key {device_key['vkey']}")
    return origin, size, root, cosigned, unknown


def main():
    try:
        info = json.load(sys.stdin)
        vault_id, logs, replicas = info["vaultId"], info["logs"], info["replicas"]
        evidence = info.get("evidence", [])
    except (ValueError, KeyError, TypeError) as error:
        print(f"verify_notes: the input is not the JSON of e2ekv vault info --json ({error})", file=sys.stderr)
        return 2
    failures, passed = [], 0

    def check(what, run):
        nonlocal passed
        try:
            result = run()
            passed += 1
            print(f"ok   {what}{'' if result is None else f': {result}'}")
        except Bad as error:
            failures.append(str(error))
            print(f"FAIL {what}: {error}")
        except (KeyError, TypeError, ValueError) as error:
            failures.append(f"{what}: unexpected input ({error!r})")
            print(f"FAIL {what}: unexpected input ({error!r})")

    if not isinstance(vault_id, str) or not HEX64.match(vault_id):
        print("verify_notes: vaultId is not 64 lowercase hex digits", file=sys.stderr)
        return 2

    cosigners = []
    for replica in replicas:
        if replica.get("vkey") is None:
            print(f"note {replica.get('url')}: no cosigner key recorded, nothing to check")
            continue

        def replica_key(replica=replica):
            key = parse_vkey(replica["vkey"], SIG_COSIGNATURE_V1, f"cosigner vkey of {replica['url']}")
            if not any(c["vkey"] == key["vkey"] for c in cosigners):
                cosigners.append(key)
            return key["name"]

        check(f"replica {replica['url']} cosigner vkey", replica_key)

    device_keys = {}
    for log in logs:
        device = log["device"]

        def device_key(log=log, device=device):
            if not isinstance(device, str) or not HEX64.match(device):
                raise Bad(f"device {device!r} is not 64 lowercase hex digits")
            key = parse_vkey(log["vkey"], SIG_ED25519, f"vkey of device {device[:16]}")
            if key["name"] != f"e2ekv/v1/{vault_id}/{device}":
                raise Bad(f"the vkey of device {device[:16]} is named {key['name']}, not its log origin")
            if key["key"] != bytes.fromhex(device):
                raise Bad(f"the vkey of device {device[:16]} holds another key than the device's")
            device_keys[device] = key

        check(f"device {device[:16]} vkey", device_key)
        checkpoint = log.get("checkpoint")
        if device not in device_keys or checkpoint is None:
            continue

        def checkpoint_note(log=log, device=device, checkpoint=checkpoint):
            listed = {c["name"]: c for c in checkpoint["cosignatures"]}
            keys = list(cosigners)
            for c in listed.values():
                if c["vkey"] is not None:
                    key = parse_vkey(c["vkey"], SIG_COSIGNATURE_V1, f"cosigner vkey {c['name']}")
                    if not any(k["vkey"] == key["vkey"] for k in keys):
                        keys.append(key)
            what = f"checkpoint of device {device[:16]}"
            _, size, root, cosigned, unknown = verify_device_note(checkpoint["note"], device_keys[device], keys, what)
            if size != checkpoint["size"] or base64.b64encode(root).decode() != checkpoint["root"]:
                raise Bad(f"{what} signs size {size}, not the listed {checkpoint['size']}, or another root")
            if size > log["entries"] or (size == log["verified"] and checkpoint["root"] != log["root"]):
                raise Bad(f"{what} does not match the log's listed entries and root")
            for name, c in listed.items():
                if c["vkey"] is None:
                    continue
                if name not in cosigned:
                    raise Bad(f"{what}: the listed cosignature of {name} is not in the note")
                if c["time"] is not None and int(c["time"]) != cosigned[name]:
                    raise Bad(f"{what}: the cosignature of {name} is dated {cosigned[name]}, listed as {c['time']}")
            stray = [n for n in unknown if n not in listed]
            if stray:
                raise Bad(f"{what} carries signature lines vault info does not list: {', '.join(stray)}")
            unchecked = [n for n in unknown if n in listed]
            return (
                f"size {size}, device signature and {len(cosigned)} cosignature(s) verify"
                + (f"; {len(unchecked)} by unlisted keys not checked" if unchecked else "")
            )

        check(f"checkpoint note of device {device[:16]}", checkpoint_note)

    for i, record in enumerate(evidence):

        def evidence_pair(record=record):
            device = record["device"]
            if not isinstance(device, str) or not HEX64.match(device):
                raise Bad(f"evidence device {device!r} is not 64 lowercase hex digits")
            origin = f"e2ekv/v1/{vault_id}/{device}"
            raw = bytes.fromhex(device)
            key = {"name": origin, "id": key_id(origin, SIG_ED25519, raw), "key": raw, "vkey": origin}
            _, size1, root1, _, _ = verify_device_note(record["first"], key, cosigners, "evidence, first note")
            _, size2, root2, _, _ = verify_device_note(record["second"], key, cosigners, "evidence, second note")
            if size1 == size2 and root1 != root2:
                return f"equivocation: two roots for size {size1}, both signed by the device"
            if size2 < size1:
                return f"rollback: size {size2} presented after size {size1}"
            if size1 != size2:
                return f"sizes {size1} and {size2}: contradict only with a failed consistency proof"
            raise Bad("the two notes sign the same checkpoint: they are no evidence")

        check(f"evidence {i + 1} (device {str(record.get('device'))[:16]})", evidence_pair)

    if failures:
        print(f"{len(failures)} check(s) FAILED, {passed} passed")
        return 1
    print(f"all {passed} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
