#!/usr/bin/env python3
"""Checks protocol/vectors/*.json from SPEC.md alone, with Python's standard
library and the `cryptography` package: a second implementation in another
language, written from the spec's byte layouts, not from the TypeScript.

Secretbox (XSalsa20-Poly1305) is not in either library, so envelopes and
wraps are checked for their layout, binding hash and key derivation (X25519
and HKDF) but not decrypted here; the TypeScript vectors test opens them with
tweetnacl. Nor is the Ed25519 subgroup check: identity strings rejected for a
bad signing key are only checked to carry a correct checksum.

Exit status 0 when every check passes. Run: python3 protocol/scripts/check_vectors.py
"""
import hashlib
import hmac
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.exceptions import InvalidSignature

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
checks = 0


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        raise SystemExit(f"FAIL: {what}")


def load(name):
    return json.loads((VECTORS / name).read_text())


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def padme(length):
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    unit = 1 << (e - s)
    return -(-length // unit) * unit


class Reader:
    def __init__(self, data):
        self.data, self.off = data, 0

    def take(self, n):
        if n > len(self.data) - self.off:
            raise ValueError("truncated")
        out = self.data[self.off : self.off + n]
        self.off += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def end(self):
        if self.off != len(self.data):
            raise ValueError("trailing bytes")


def check_genesis():
    v = load("genesis.json")
    for c in v["valid"]:
        signed = bytes.fromhex(c["signed"])
        check(len(signed) == 169, "genesis is 169 bytes")
        body, sig = signed[:105], signed[105:]
        r = Reader(body)
        check(r.take(17) == b"e2ekv/v1/genesis\0", "genesis tag")
        check(r.u64() == int(c["created_at_ms"]), "genesis created_at_ms")
        check(r.take(16).hex() == c["nonce"], "genesis nonce")
        creator = r.take(32)
        check(creator.hex() == c["creator"], "genesis creator")
        check(r.take(32).hex() == c["creator_box_key"], "genesis box key")
        r.end()
        Ed25519PublicKey.from_public_bytes(creator).verify(sig, body)
        seed_pub = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(c["creator_seed"])).public_key()
        check(seed_pub.public_bytes_raw() == creator, "creator key from seed")
        check(sha256(body).hex() == c["vault_id"], "vault id = SHA-256(body)")
    for c in v["invalid"]:
        signed = bytes.fromhex(c["signed"])
        if c["error"] == "BAD_SIGNATURE":
            try:
                Ed25519PublicKey.from_public_bytes(signed[41:73]).verify(signed[105:], signed[:105])
                check(False, c["description"])
            except InvalidSignature:
                check(True, c["description"])
        elif c["error"] == "MALFORMED":
            check(len(signed) != 169, c["description"])
        elif c["error"] == "UNSUPPORTED_VERSION":
            check(signed[:17] != b"e2ekv/v1/genesis\0" and signed[:7] == b"e2ekv/v", c["description"])


def check_derivation():
    for c in load("derivation.json")["valid"]:
        secret, salt = bytes.fromhex(c["epoch_secret"]), bytes.fromhex(c["vault_id"])
        epoch = struct.pack(">I", c["epoch"])
        check(hkdf(secret, salt, b"e2ekv/v1 value-encryption" + epoch).hex() == c["value_key"], "K_enc")
        check(hkdf(secret, salt, b"e2ekv/v1 epoch-check" + epoch).hex() == c["epoch_check"], "epoch check")
        check(hkdf(secret, salt, b"e2ekv/v1 key-name-blinding").hex() == c["blinding_key"], "K_blind")


def check_blinding():
    v = load("blinding.json")
    key = bytes.fromhex(v["blinding_key"])
    for c in v["valid"]:
        name = c["name"].encode("utf-8")
        check(name.hex() == c["name_utf8"], "name UTF-8")
        check(hmac.new(key, name, hashlib.sha256).hexdigest() == c["blinded_key"], f"blinded {c['name'][:20]!r}")
    for c in v["invalid"]:
        try:
            n = c["name"].encode("utf-8")
            check(len(n) == 0 or len(n) > 1024, c["description"])
        except UnicodeEncodeError:
            check(True, c["description"])


def check_padding():
    v = load("padding.json")
    for c in v["valid"]:
        check(padme(c["length"]) == c["padded"], f"padme({c['length']})")


def binding_hash(b):
    fields = struct.pack(
        ">B32s32sQIH32s",
        b["purpose"],
        bytes.fromhex(b["vault_id"]),
        bytes.fromhex(b["device"]),
        int(b["log_index"]),
        b["epoch"],
        b["item"],
        bytes.fromhex(b["blinded_key"]),
    )
    return sha256(b"e2ekv/v1/binding\0", fields)


def check_envelopes():
    v = load("envelope.json")
    for c in v["valid"]:
        check(binding_hash(c["binding"]).hex() == c["binding_hash"], "binding hash")
        env = bytes.fromhex(c["envelope"])
        payload = bytes.fromhex(c["payload"])
        check(env[0] == 1, "envelope version")
        check(env[1:25].hex() == c["nonce"], "envelope nonce")
        check(len(env) == 1 + 24 + 16 + padme(36 + len(payload)), "envelope length")


def parse_context(r, writer):
    clock = (r.u64(), r.u32())
    count = r.u16()
    context = [(r.take(32), r.u64()) for _ in range(count)]
    devices = [d for d, _ in context]
    if devices != sorted(set(devices)) or writer in devices or any(s < 1 for _, s in context):
        raise ValueError("bad context")
    return clock, context


def parse_entry(data):
    r = Reader(data)
    if r.take(15) != b"e2ekv/v1/entry\0":
        raise ValueError("tag")
    kind = r.u8()
    vault, device, index, epoch = r.take(32), r.take(32), r.u64(), r.u32()
    if kind == 1:
        meta = r.take(r.u32())
        count = r.u16()
        if not 1 <= count <= 1024 or len(meta) < 77:
            raise ValueError("items")
        keys = []
        for _ in range(count):
            keys.append(r.take(32))
            ref = r.u8()
            if ref == 0:
                if len(r.take(r.u32())) < 77:
                    raise ValueError("envelope")
            elif ref == 1:
                r.take(32)
                r.u32()
            else:
                raise ValueError("ref kind")
        if keys != sorted(set(keys)):
            raise ValueError("order")
        r.end()
        return {"type": "data", "device": device, "index": index, "epoch": epoch, "keys": keys, "meta": meta}
    if kind == 2:
        parse_context(r, device)
        op, member, box, role = r.u8(), r.take(32), r.take(32), r.u8()
        zero = box == bytes(32)
        ok = (op == 1 and not zero and role in (1, 2, 3)) or (op == 2 and zero and role in (1, 2, 3)) or (
            op == 3 and zero and role == 0
        )
        if not ok:
            raise ValueError("membership")
        r.end()
        return {"type": "membership", "op": op, "role": role}
    if kind == 3:
        if epoch < 1:
            raise ValueError("epoch 0")
        clock, context = parse_context(r, device)
        check, ephemeral, count = r.take(32), r.take(32), r.u16()
        if ephemeral == bytes(32) or not 1 <= count <= 1024:
            raise ValueError("epoch record")
        recipients = [(r.take(32), r.take(72)) for _ in range(count)]
        members = [m for m, _ in recipients]
        if members != sorted(set(members)):
            raise ValueError("recipient order")
        r.end()
        return {
            "type": "epoch",
            "vault": vault,
            "device": device,
            "index": index,
            "epoch": epoch,
            "clock": clock,
            "context": context,
            "check": check,
            "ephemeral": ephemeral,
            "recipients": recipients,
        }
    raise ValueError("type")


def check_entries():
    v = load("entry.json")
    blind_key = bytes.fromhex(v["blinding_key"])
    for c in v["valid"]:
        data = bytes.fromhex(c["entry"])
        check(sha256(b"\0", data).hex() == c["leaf_hash"], "leaf hash")
        parse_entry(data)
    data_case = v["valid"][0]
    entry = parse_entry(bytes.fromhex(data_case["entry"]))
    meta = Reader(bytes.fromhex(data_case["meta"]["plaintext"]))
    (wall, counter), context = parse_context(meta, entry["device"])
    meta.end()
    check((wall, counter) == (int(data_case["meta"]["wall_ms"]), data_case["meta"]["counter"]), "meta clock")
    check(entry["meta"].hex() == data_case["meta"]["envelope"], "meta envelope in entry")
    for key, item in zip(entry["keys"], data_case["items"]):
        check(hmac.new(blind_key, item["name"].encode(), hashlib.sha256).digest() == key, "item blinded key")
        payload = Reader(bytes.fromhex(item["payload"]))
        check(payload.take(payload.u16()).decode() == item["name"], "payload name")
        check(payload.u8() == item["kind"], "payload kind")
    blob_case = v["valid"][1]
    blob = bytes.fromhex(blob_case["blob"])
    check(sha256(blob).hex() == blob_case["blob_hash"], "blob hash")
    check(blob_case["blob_hash"] in blob_case["entry"], "blob hash inside the entry")
    check(parse_entry(bytes.fromhex(v["valid"][2]["entry"])) == {"type": "membership", "op": 1, "role": 2}, "membership")
    for c in v["invalid"]:
        try:
            parse_entry(bytes.fromhex(c["entry"]))
            check(False, f"invalid entry accepted: {c['description']}")
        except ValueError:
            check(True, c["description"])


def main():
    check_genesis()
    check_derivation()
    check_blinding()
    check_padding()
    check_envelopes()
    check_entries()
    check_checkpoints()
    check_requests()
    check_identity()
    check_wrap()
    check_epoch()
    check_invitation()
    print(f"check_vectors.py: {checks} checks passed")


def mth(leaves):
    """RFC 6962 section 2.1 Merkle Tree Hash over leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\1", mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162 section 2.1.3.2."""
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\1", p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\1", r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1, size2, proof, root1, root2):
    """RFC 9162 section 2.1.4.2 (size1 > 0)."""
    if size1 == size2:
        return not proof and root1 == root2
    if size1 & (size1 - 1) == 0:
        proof = [root1] + proof
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha256(b"\1", c, fr)
            sr = sha256(b"\1", c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha256(b"\1", sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


def check_requests():
    import base64

    for c in load("request.json")["valid"]:
        method, path = c["method"].encode(), c["path"].encode()
        body = bytes.fromhex(c["body"])
        data = (
            b"e2ekv/v1/request\0"
            + bytes.fromhex(c["audience"])
            + bytes.fromhex(c["device"])
            + struct.pack(">Q", int(c["timestamp_ms"]))
            + bytes.fromhex(c["nonce"])
            + struct.pack(">H", len(method))
            + method
            + struct.pack(">H", len(path))
            + path
            + sha256(body)
        )
        check(data.hex() == c["input"], "request signature input")
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(c["device"])).verify(bytes.fromhex(c["signature"]), data)
        header = (
            f"e2ekv-v1 device={c['device']},ts={c['timestamp_ms']},nonce={c['nonce']},"
            f"sig={base64.b64encode(bytes.fromhex(c['signature'])).decode()}"
        )
        check(header == c["authorization"], "Authorization header")


def key_id(name, sig_type, public_key):
    return sha256(name.encode(), b"\n", bytes([sig_type]), public_key)[:4]


def split_note(note):
    text, _, sigs = note.rpartition("\n\n")
    return text + "\n", [line.split(" ") for line in sigs.rstrip("\n").split("\n")]


def check_checkpoints():
    import base64

    v = load("checkpoint.json")
    vault, device = bytes.fromhex(v["vault_id"]), bytes.fromhex(v["device"])
    origin = "e2ekv/v1/" + vault.hex() + "/" + device.hex()
    check(v["origin"] == origin, "origin layout")
    name, kid, key = v["device_vkey"].split("+")
    check(name == origin and bytes.fromhex(kid) == key_id(origin, 1, device), "device vkey key ID")
    check(base64.b64decode(key) == b"\1" + device, "device vkey key")
    cos_name = v["cosigner_name"]
    cos_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(v["cosigner_seed"])).public_key().public_bytes_raw()
    cos_vkey_key = base64.b64encode(bytes([4]) + cos_key).decode()
    check(v["cosigner_vkey"] == f"{cos_name}+{key_id(cos_name, 4, cos_key).hex()}+{cos_vkey_key}", "cosigner vkey")
    leaves = [bytes.fromhex(h) for h in v["leaf_hashes"]]
    entries = [bytes.fromhex(c["entry"]) for c in load("entry.json")["valid"]]
    check(leaves == [sha256(b"\0", e) for e in entries], "the log is the entry vectors")
    root = mth(leaves)
    for i, proof in enumerate(v["inclusion_proofs"]):
        check(verify_inclusion(i, len(leaves), leaves[i], [bytes.fromhex(h) for h in proof], root), f"inclusion {i}")
    for c in v["valid"]:
        size = c["size"]
        check(mth(leaves[:size]).hex() == c["root"], f"root of size {size}")
        if size < len(leaves):
            proof = [bytes.fromhex(h) for h in c["consistency_to_latest"]]
            check(verify_consistency(size, len(leaves), proof, bytes.fromhex(c["root"]), root), f"consistency {size}")
        text, sigs = split_note(c["cosigned"])
        check(text == f"{origin}\n{size}\n{base64.b64encode(bytes.fromhex(c['root'])).decode()}\n", "checkpoint text")
        check(c["note"] == text + "\n" + " ".join(sigs[0]) + "\n", "cosigning keeps the device line")
        (dash, signer, blob), (dash2, cosigner, blob2) = sigs
        check(dash == dash2 == "\u2014" and signer == origin and cosigner == cos_name, "signature line names")
        raw = base64.b64decode(blob, validate=True)
        check(raw[:4] == key_id(origin, 1, device), "device key ID")
        Ed25519PublicKey.from_public_bytes(device).verify(raw[4:], text.encode())
        raw2 = base64.b64decode(blob2, validate=True)
        check(raw2[:4] == key_id(cos_name, 4, cos_key) and len(raw2) == 4 + 72, "cosignature key ID and length")
        timestamp = struct.unpack(">Q", raw2[4:12])[0]
        check(str(timestamp) == v["cosignature_time"], "cosignature time")
        message = f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()
        Ed25519PublicKey.from_public_bytes(cos_key).verify(raw2[12:], message)
        check(True, f"signatures of size {size}")
    check(len(v["invalid"]) == 12, "invalid checkpoint count")


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def from_base64url(text):
    """Strict unpadded base64url: ValueError('MALFORMED') or ValueError('NON_CANONICAL')."""
    import base64

    if any(c not in B64URL for c in text) or len(text) % 4 == 1:
        raise ValueError("MALFORMED")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(data).decode().rstrip("=") != text:
        raise ValueError("NON_CANONICAL")
    return data


def x25519_public(secret):
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def x25519_shared(secret, public):
    """ValueError for a small-order public key (an all-zero result), as SPEC 21.2 refuses."""
    return X25519PrivateKey.from_private_bytes(secret).exchange(X25519PublicKey.from_public_bytes(public))


def ed25519_public(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def identity_error(text):
    """The SPEC 21.1 verdict Python can reach without a subgroup check: a code, or the keys."""
    import re

    if not text.startswith("e2ekv-id1-"):
        return "UNSUPPORTED_VERSION" if re.match(r"e2ekv-id[0-9]+-", text) else "MALFORMED"
    if len(text) != 101:
        return "MALFORMED"
    try:
        payload = from_base64url(text[10:])
    except ValueError as e:
        return str(e)
    signing, box, checksum = payload[:32], payload[32:64], payload[64:]
    if sha256(b"e2ekv/v1/identity\0", signing, box)[:4] != checksum:
        return "MALFORMED"
    if box == bytes(32):
        return "BAD_KEY"
    return (signing, box)


def check_identity():
    import base64

    v = load("identity.json")
    for c in v["valid"]:
        signing = ed25519_public(bytes.fromhex(c["signing_seed"]))
        box = x25519_public(bytes.fromhex(c["box_secret"]))
        check(signing.hex() == c["signing_key"] and box.hex() == c["box_key"], "identity keys from secrets")
        checksum = sha256(b"e2ekv/v1/identity\0", signing, box)[:4]
        check(checksum.hex() == c["checksum"], "identity checksum")
        text = "e2ekv-id1-" + base64.urlsafe_b64encode(signing + box + checksum).decode().rstrip("=")
        check(text == c["identity_string"] and len(text) == 101, "identity string")
        check(identity_error(text) == (signing, box), "identity string parses")
        digest = sha256(b"e2ekv/v1/fingerprint\0", signing, box)[:10].hex()
        check(" ".join(digest[i : i + 4] for i in range(0, 20, 4)) == c["fingerprint"], "fingerprint")
    for c in v["invalid"]:
        verdict = identity_error(c["text"])
        if isinstance(verdict, tuple):
            # A signing key that fails the subgroup or canonical-encoding check: not checked here.
            check(c["error"] == "BAD_KEY", c["description"])
        else:
            check(verdict == c["error"], c["description"])


def wrap_key(shared, vault, label, ephemeral, recipient, extra):
    return hkdf(shared, vault, label.encode() + ephemeral + recipient + extra)


def check_wrap():
    v = load("wrap.json")
    for c in v["valid"]:
        box_secret, e_secret = bytes.fromhex(c["recipient_box_secret"]), bytes.fromhex(c["ephemeral_secret"])
        box, ephemeral = x25519_public(box_secret), x25519_public(e_secret)
        check(box.hex() == c["recipient_box_key"] and ephemeral.hex() == c["ephemeral"], "wrap public keys")
        shared = x25519_shared(e_secret, box)
        check(shared == x25519_shared(box_secret, ephemeral) and shared.hex() == c["shared"], "X25519 shared secret")
        info = c["label"].encode() + ephemeral + box + bytes.fromhex(c["extra"])
        check(info.hex() == c["info"], "wrap HKDF info")
        vault = bytes.fromhex(c["vault_id"])
        check(wrap_key(shared, vault, c["label"], ephemeral, box, bytes.fromhex(c["extra"])).hex() == c["wrap_key"], "wrap key")
        wrapped = bytes.fromhex(c["wrapped"])
        check(wrapped[:24].hex() == c["nonce"], "wrap nonce")
        check(len(wrapped) == 24 + 16 + len(bytes.fromhex(c["plaintext"])), "wrap length")
    good = v["valid"][0]
    for c in v["invalid"]:
        wrapped, ephemeral = bytes.fromhex(c["wrapped"]), bytes.fromhex(c["ephemeral"])
        if c["error"] == "BAD_KEY":
            try:
                x25519_shared(bytes.fromhex(c["recipient_box_secret"]), ephemeral)
                check(ephemeral == bytes(32), c["description"])
            except ValueError:
                check(True, c["description"])
        elif c["error"] == "MALFORMED":
            check(len(wrapped) < 40, c["description"])
        else:
            fields = ("vault_id", "label", "extra", "recipient_box_secret", "wrapped")
            check(any(c[k] != good[k] for k in fields), c["description"])


def check_epoch():
    v = load("epoch.json")
    vault = bytes.fromhex(load("genesis.json")["valid"][0]["vault_id"])
    for c in v["valid"]:
        data = bytes.fromhex(c["entry"])
        check(sha256(b"\0", data).hex() == c["leaf_hash"], "epoch record leaf hash")
        e = parse_entry(data)
        check(e["type"] == "epoch" and e["vault"] == vault and e["epoch"] == c["epoch"], "epoch record header")
        secret = bytes.fromhex(c["epoch_secret"])
        check_value = hkdf(secret, vault, b"e2ekv/v1 epoch-check" + struct.pack(">I", e["epoch"]))
        check(check_value == e["check"] and check_value.hex() == c["check"], "check(e)")
        check(x25519_public(bytes.fromhex(c["ephemeral_secret"])) == e["ephemeral"], "E")
        for (member, wrapped), r in zip(e["recipients"], c["recipients"]):
            check(member.hex() == r["member"] and wrapped.hex() == r["wrapped"], "recipient")
            box = x25519_public(bytes.fromhex(r["box_secret"]))
            check(box.hex() == r["box_key"], "recipient box key")
            shared = x25519_shared(bytes.fromhex(r["box_secret"]), e["ephemeral"])
            check(shared == x25519_shared(bytes.fromhex(c["ephemeral_secret"]), box), "epoch wrap shared secret")
            wrap_key(shared, vault, "e2ekv/v1 epoch-wrap", e["ephemeral"], box, struct.pack(">I", e["epoch"]))
            check(wrapped[:24].hex() == r["nonce"], "epoch wrap nonce")
    for c in v["invalid"]:
        try:
            parse_entry(bytes.fromhex(c["entry"]))
            check(False, f"invalid epoch record accepted: {c['description']}")
        except ValueError:
            check(True, c["description"])
    good = bytes.fromhex(v["valid"][0]["entry"])
    for c in v["invalid_open"]:
        e = parse_entry(bytes.fromhex(c["entry"]))
        check(bytes.fromhex(c["entry"]) != good, c["description"])
        if c["error"] == "INTEGRITY":
            secret = bytes.fromhex(v["valid"][0]["epoch_secret"])
            check(hkdf(secret, vault, b"e2ekv/v1 epoch-check" + struct.pack(">I", e["epoch"])) != e["check"], c["description"])


def parse_invitation(token):
    """SPEC 21.4 layout and signature; returns the fields, or raises ValueError(code)."""
    import re

    if not token.startswith("e2ekv-invite1-"):
        raise ValueError("UNSUPPORTED_VERSION" if re.match(r"e2ekv-invite[0-9]+-", token) else "MALFORMED")
    data = from_base64url(token[14:])
    r = Reader(data)
    try:
        tag = r.take(20)
        if tag != b"e2ekv/v1/invitation\0":
            raise ValueError("UNSUPPORTED_VERSION" if tag[:7] == b"e2ekv/v" else "MALFORMED")
        f = {"vault": r.take(32), "inviter": r.take(32), "invitee": r.take(32), "box": r.take(32)}
        f["role"] = r.u8()
        f["ephemeral"] = r.take(32)
        f["sealed"] = r.take(r.u16())
        count = r.u8()
        if count > 16:
            raise ValueError("TOO_LARGE")
        f["servers"] = [r.take(r.u16()) for _ in range(count)]
        body_length = r.off
        signature = r.take(64)
        r.end()
    except ValueError as e:
        raise ValueError(str(e) if str(e) in ("UNSUPPORTED_VERSION", "TOO_LARGE", "MALFORMED") else "MALFORMED")
    if f["role"] not in (1, 2, 3) or any(len(s) == 0 for s in f["servers"]):
        raise ValueError("MALFORMED")
    if any(len(s) > 1024 for s in f["servers"]):
        raise ValueError("TOO_LARGE")
    if f["ephemeral"] == bytes(32) or len(f["sealed"]) < 24 + 16 + 2 + 36:
        raise ValueError("MALFORMED")
    if f["box"] == bytes(32):
        raise ValueError("BAD_KEY")
    try:
        Ed25519PublicKey.from_public_bytes(f["inviter"]).verify(signature, data[:body_length])
    except InvalidSignature:
        # Python cannot tell a small-order key (BAD_KEY) from a bad signature here.
        raise ValueError("BAD_SIGNATURE")
    f["body"], f["signature"] = data[:body_length], signature
    return f


def check_invitation():
    v = load("invitation.json")
    for c in v["valid"]:
        f = parse_invitation(c["token"])
        check(f["body"].hex() == c["body"] and f["signature"].hex() == c["signature"], "invitation body and signature")
        check(f["inviter"] == ed25519_public(bytes.fromhex(c["inviter_seed"])), "inviter key")
        check(f["invitee"] == ed25519_public(bytes.fromhex(c["invitee_seed"])), "invitee key")
        check(f["box"] == x25519_public(bytes.fromhex(c["invitee_box_secret"])), "invitee box key")
        check(f["role"] == {"reader": 1, "writer": 2, "admin": 3}[c["role"]], "invitation role")
        check([s.decode() for s in f["servers"]] == c["servers"], "invitation servers")
        check(f["ephemeral"] == x25519_public(bytes.fromhex(c["ephemeral_secret"])), "invitation E")
        plaintext = struct.pack(">H", len(c["secrets"])) + b"".join(
            struct.pack(">I", s["epoch"]) + bytes.fromhex(s["secret"]) for s in c["secrets"]
        )
        check(plaintext.hex() == c["secrets_plaintext"], "secrets plaintext")
        check(len(f["sealed"]) == 24 + 16 + len(plaintext) and f["sealed"][:24].hex() == c["nonce"], "sealed layout")
        shared = x25519_shared(bytes.fromhex(c["invitee_box_secret"]), f["ephemeral"])
        wrap_key(shared, f["vault"], "e2ekv/v1 invitation", f["ephemeral"], f["box"], f["invitee"])
    for c in v["invalid"]:
        try:
            parse_invitation(c["token"])
            verdict = "ok"
        except ValueError as e:
            verdict = str(e)
        if c.get("open"):
            # Refused only when opened (secretbox, or the opener's keys): it must read well.
            check(verdict == "ok", c["description"])
        elif c["error"] == "BAD_KEY" and verdict == "BAD_SIGNATURE":
            check(True, c["description"])
        else:
            check(verdict == c["error"], f"{c['description']}: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
