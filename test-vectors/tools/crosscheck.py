#!/usr/bin/env python3
"""Cross-checks the project's own vectors (test-vectors/vectors/project) with an
implementation independent of sqrl-core: Python's hashlib (scrypt, SHA-256, HMAC)
and the `cryptography` package (X25519, Ed25519, AES-GCM; OpenSSL underneath).

Usage: python3 test-vectors/tools/crosscheck.py [DIR]
Prints one line per file and "N passed, M failed"; exits non-zero on any mismatch,
any file it does not recognise, or when no file was checked.
"""
import base64, csv, hashlib, hmac, io, sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def b64d(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def enhash(data):
    acc, h = bytes(32), data
    for _ in range(16):
        h = hashlib.sha256(h).digest()
        acc = bytes(a ^ b for a, b in zip(acc, h))
    return acc


def enscrypt(password, salt, iterations, log_n=9):
    acc, s = bytes(32), salt
    for _ in range(iterations):
        k = hashlib.scrypt(password, salt=s, n=1 << log_n, r=256, p=1, dklen=32, maxmem=1 << 26)
        acc = bytes(a ^ b for a, b in zip(acc, k))
        s = k
    return acc


def x25519_public(scalar):
    return X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def x25519(scalar, point):
    return X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(point))


def ed_public(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def site_seed(imk, site):
    return hmac.new(imk, site.encode(), hashlib.sha256).digest()


def rows(text):
    body = "\n".join(l for l in text.splitlines() if l and not l.startswith("#"))
    reader = csv.reader(io.StringIO(body))
    next(reader)  # header
    return list(reader)


def check_urs(text):
    for iuk, rlk, suk, vuk, message, urs in rows(text):
        iuk, rlk, suk, vuk = map(bytes.fromhex, (iuk, rlk, suk, vuk))
        assert x25519_public(rlk) == suk, "SUK"
        dhka = x25519(rlk, x25519_public(iuk))
        assert dhka == x25519(iuk, suk), "DHKA differs between the RLK and IUK paths"
        assert ed_public(dhka) == vuk, "VUK"
        signature = Ed25519PrivateKey.from_private_bytes(dhka).sign(b64d(message))
        assert b64e(signature) == urs, "URS"
        Ed25519PublicKey.from_public_bytes(vuk).verify(b64d(urs), b64d(message))
    return len(rows(text))


def check_pins(text):
    for piuk, domain, sin, pidk, pins in rows(text):
        seed = site_seed(enhash(b64d(piuk)), domain)
        assert b64e(ed_public(seed)) == pidk, "PIDK"
        assert b64e(hmac.new(enhash(seed), sin.encode(), hashlib.sha256).digest()) == pins, "PINS"
    return len(rows(text))


def values(text):
    return {k.strip(): v.strip() for k, v in (l.split(" = ", 1) for l in text.splitlines() if " = " in l and not l.startswith("#"))}


def blocks(s4_text):
    assert s4_text[:8].lower() == "sqrldata"
    data = b64d(s4_text[8:]) if s4_text.startswith("SQRLDATA") else s4_text[8:].encode()
    out = {}
    while data:
        length, kind = int.from_bytes(data[0:2], "little"), int.from_bytes(data[2:4], "little")
        out[kind] = data[:length]
        data = data[length:]
    return out


def check_type3(text):
    v = values(text)
    b = blocks(v["s4"])
    iuk = bytes.fromhex(v["iuk"])
    one = b[1]
    aad_len = int.from_bytes(one[4:6], "little")
    iv, salt, log_n = one[6:18], one[18:34], one[34]
    iterations = int.from_bytes(one[35:39], "little")
    key = enscrypt(v["password"].encode(), salt, iterations, log_n)
    plain = AESGCM(key).decrypt(iv, one[aad_len:], one[:aad_len])
    imk, ilk = plain[:32], plain[32:]
    assert imk == enhash(iuk), "IMK"
    assert ilk == x25519_public(iuk), "ILK"
    two = b[2]
    key = enscrypt(v["rescue_code"].encode(), two[4:20], int.from_bytes(two[21:25], "little"), two[20])
    assert AESGCM(key).decrypt(bytes(12), two[25:], two[:25]) == iuk, "IUK"
    three = b[3]
    assert int.from_bytes(three[4:6], "little") == int(v["edition"]), "edition"
    piuks = AESGCM(imk).decrypt(bytes(12), three[6:], three[:6])
    got = [piuks[i:i + 32].hex() for i in range(0, len(piuks), 32)]
    assert got == v["piuks"].split(","), "previous IUKs"
    return 1


def params(encoded):
    return dict(l.split("=", 1) for l in b64d(encoded).decode().split("\r\n") if l)


def check_exchange(text):
    steps, current = [], {}
    for line in text.splitlines():
        if " = " not in line or line.startswith("#"):
            continue
        k, val = line.split(" = ", 1)
        if k == "post" and current:
            steps.append(current)
            current = {}
        if k in ("post", "body", "reply", "tif"):
            current[k] = val
    steps.append(current)
    origin = values(text)["origin"]
    vuks = {}
    previous_reply = None
    for n, step in enumerate(steps, 1):
        form = dict(p.split("=", 1) for p in step["body"].split("&"))
        client, server = form["client"], form["server"]
        fields = params(client)
        message = (client + server).encode()
        Ed25519PublicKey.from_public_bytes(b64d(fields["idk"])).verify(b64d(form["ids"]), message)
        if "pidk" in fields:
            Ed25519PublicKey.from_public_bytes(b64d(fields["pidk"])).verify(b64d(form["pids"]), message)
        if "urs" in form:
            owner = fields.get("pidk", fields["idk"])
            Ed25519PublicKey.from_public_bytes(vuks[owner]).verify(b64d(form["urs"]), message)
        decoded_server = b64d(server)
        if decoded_server.startswith(b"qrl://") or decoded_server.startswith(b"sqrl://"):
            nut = step["post"].split("nut=", 1)[1]
            assert f"nut={nut}".encode() in decoded_server, f"step {n}: URL and POST nut differ"
        else:
            assert server == previous_reply["reply"], f"step {n}: server= is not the previous reply verbatim"
            assert step["post"] == origin + params(previous_reply["reply"])["qry"], f"step {n}: POST URL is not qry"
        reply = params(step["reply"])
        assert reply["tif"] == step["tif"], f"step {n}: tif"
        if fields.get("cmd") == "ident" and "vuk" in fields and not int(reply["tif"], 16) & 0x40:
            vuks[fields["idk"]] = b64d(fields["vuk"])
        previous_reply = step
    return len(steps)


CHECKS = [
    ("IUK(hex),RLK(hex),SUK(hex),VUK(hex),Message", check_urs),
    ("PIUK(base64_url),Domain,SIN,PIDK", check_pins),
    ("# identity with previous keys (type 3)", check_type3),
    ("# exchange:", check_exchange),
]


def main():
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent / "vectors" / "project")
    passed = failed = 0
    for path in sorted(directory.glob("*.txt")):
        text = path.read_text()
        first = next(l for l in text.splitlines() if l and not l.startswith("# Source"))
        check = next((c for signature, c in CHECKS if first.startswith(signature)), None)
        if check is None:
            # A file this script cannot check would otherwise drop out silently.
            print(f"FAIL  {path}: not a format this cross-check knows")
            failed += 1
            continue
        try:
            count = check(text)
            print(f"ok    {path} ({count} checked)")
            passed += 1
        except Exception as error:  # report every file, then fail
            print(f"FAIL  {path}: {type(error).__name__}: {error}")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
