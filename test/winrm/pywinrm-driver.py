#!/usr/bin/python3
"""Drives the real pywinrm (Debian python3-winrm) against the WS-Man test
server, proving the server speaks the protocol Windows speaks.

stdin (JSON): endpoint, user, password, transport ('basic'|'ntlm'),
encryption ('always'|'never'|'auto'), account_script_args (list: the
constant jitgate command line), account_stdin (base64 stdin for it, or null).
stdout (JSON): results of ipconfig, run_ps, and the account script.
"""
import base64
import json
import sys
import uuid

import winrm
from winrm.protocol import Protocol

req = json.load(sys.stdin)
session = winrm.Session(
    req["endpoint"],
    auth=(req["user"], req["password"]),
    transport=req["transport"],
    message_encryption=req["encryption"],
    server_cert_validation="ignore",
)
out = {}

r = session.run_cmd("ipconfig")
out["ipconfig"] = {"code": r.status_code, "stdout": r.std_out.decode(), "stderr": r.std_err.decode()}

r = session.run_ps("$env:COMPUTERNAME")
out["computername"] = {"code": r.status_code, "stdout": r.std_out.decode()}

# run_ps() of pywinrm 0.3.0 passes bytes to _clean_error_msg (a str API) and
# crashes on any stderr under python 3; do what run_ps does, decoding first.
encoded = base64.b64encode("Write-Error 'boom'".encode("utf_16_le")).decode("ascii")
r = session.run_cmd("powershell -encodedcommand {0}".format(encoded))
out["error"] = {"code": r.status_code, "stderr": session._clean_error_msg(r.std_err.decode())}

if req.get("account_stdin"):
    # pywinrm 0.3 has no send_command_input: build the Send envelope with its own header helper.
    p: Protocol = session.protocol
    shell_id = p.open_shell(codepage=65001)
    command_id = p.run_command(shell_id, req["account_script_args"][0], req["account_script_args"][1:], skip_cmd_shell=True)
    send = {"env:Envelope": p._get_soap_header(
        resource_uri="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd",
        action="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send",
        shell_id=shell_id, message_id=uuid.uuid4())}
    send["env:Envelope"].setdefault("env:Body", {})["rsp:Send"] = {
        "rsp:Stream": {"@Name": "stdin", "@CommandId": command_id, "@End": "true",
                       "#text": req["account_stdin"]}}
    import xmltodict
    p.send_message(xmltodict.unparse(send))
    stdout, stderr, code = p.get_command_output(shell_id, command_id)
    p.cleanup_command(shell_id, command_id)
    p.close_shell(shell_id)
    out["account"] = {"code": code, "result": json.loads(base64.b64decode(stdout.strip()).decode())}

json.dump(out, sys.stdout)
