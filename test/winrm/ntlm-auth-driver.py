#!/usr/bin/python3
"""Cross-check driver: runs Debian's python3-ntlm-auth (the library pywinrm
uses) on inputs chosen by provisioner/winrm/ntlm.test.ts and prints what it
computes, so the TypeScript NTLM code can be compared byte for byte.

stdin (JSON): user, password, domain, negotiate (hex, the TS NEGOTIATE to
put under the MIC), challenge (hex), client_challenge (hex, 8 bytes),
session_key (hex, 16 bytes), cert_hash (hex or null), wrap (list of hex
plaintexts sealed client-to-server), unwrap (list of [sealed, signature]
hex pairs sealed server-to-client).
stdout (JSON): authenticate (hex), wrapped (list of [sealed, signature]),
unwrapped (list of hex plaintexts).
"""
import json
import os
import sys

from ntlm_auth import ntlm
from ntlm_auth.gss_channel_bindings import GssChannelBindingsStruct

req = json.load(sys.stdin)
client_challenge = bytes.fromhex(req["client_challenge"])
session_key = bytes.fromhex(req["session_key"])


def fixed_urandom(n):
    # ntlm_auth draws the client challenge (8 bytes) and the exported
    # session key (16 bytes) from os.urandom; make both deterministic.
    if n == 8:
        return client_challenge
    if n == 16:
        return session_key
    raise AssertionError("unexpected urandom(%d)" % n)


os.urandom = fixed_urandom

cbt = None
if req.get("cert_hash"):
    cbt = GssChannelBindingsStruct()
    cbt[cbt.APPLICATION_DATA] = b"tls-server-end-point:" + bytes.fromhex(req["cert_hash"])

ctx = ntlm.NtlmContext(req["user"], req["password"], req["domain"], None, cbt_data=cbt)
ctx.step()
ts_negotiate = bytes.fromhex(req["negotiate"])
ctx._negotiate_message.get_data = lambda: ts_negotiate
authenticate = ctx.step(bytes.fromhex(req["challenge"]))

sec = ctx._session_security
wrapped = []
for m in req.get("wrap", []):
    sealed, sig = sec.wrap(bytes.fromhex(m))
    wrapped.append([sealed.hex(), sig.hex()])
unwrapped = []
for sealed, sig in req.get("unwrap", []):
    unwrapped.append(sec.unwrap(bytes.fromhex(sealed), bytes.fromhex(sig)).hex())

json.dump({"authenticate": authenticate.hex(), "wrapped": wrapped, "unwrapped": unwrapped}, sys.stdout)
