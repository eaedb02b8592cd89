/**
 * The one PowerShell program jitgate runs on Windows targets.
 *
 * It is a constant: parameters never appear on the command line (where they
 * would need PowerShell quoting and would show in process listings and
 * event 4688); they travel as base64 JSON on stdin. The script decodes,
 * acts, and prints one line of base64 JSON: `{ok:true,...}` or
 * `{ok:false,error:<code>,detail}`. It refuses to modify an account whose
 * Description does not start with the marker prefix, even if asked.
 * Where the LocalAccounts module is missing (Server 2012 R2 / PS 4) it falls
 * back to ADSI `WinNT://`.
 */

export const ACCOUNT_SCRIPT = String.raw`$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
function Out-Result($r) {
  $json = ConvertTo-Json -InputObject $r -Compress -Depth 6
  [Console]::Out.Write([Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json)))
}
function Fail($code, $detail) { Out-Result @{ ok = $false; error = $code; detail = [string]$detail }; exit 0 }
try {
  $p = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([Console]::In.ReadToEnd().Trim())) | ConvertFrom-Json
} catch { Fail 'bad_input' $_.Exception.Message }
if ($p.v -ne 1) { Fail 'bad_input' 'unsupported version' }
$prefix = [string]$p.markerPrefix
$useAdsi = -not (Get-Command New-LocalUser -ErrorAction SilentlyContinue)
$computer = if ($useAdsi) { [ADSI]("WinNT://" + $env:COMPUTERNAME + ",computer") } else { $null }
function Is-Sid($g) { return ([string]$g) -match '^S-1-[0-9]+(-[0-9]+)+$' }
function Find-User($name) {
  if ($useAdsi) {
    $u = $computer.Children | Where-Object { $_.SchemaClassName -eq 'User' -and $_.Name -eq $name } | Select-Object -First 1
    if (-not $u) { return $null }
    $flags = [int]$u.UserFlags.Value
    $exp = $null
    try { $d = [DateTime]$u.InvokeGet('AccountExpirationDate'); if ($d.Year -lt 9000) { $exp = $d } } catch { }
    return [pscustomobject]@{ Name = [string]$u.Name.Value; Description = [string]$u.Description.Value; Enabled = -not ($flags -band 2); AccountExpires = $exp; Adsi = $u }
  }
  return Get-LocalUser -Name $name -ErrorAction SilentlyContinue
}
function Find-Group($g) {
  if ($useAdsi) {
    $name = if (Is-Sid $g) { (New-Object Security.Principal.SecurityIdentifier($g)).Translate([Security.Principal.NTAccount]).Value.Split('\')[-1] } else { $g }
    try { return [ADSI]("WinNT://" + $env:COMPUTERNAME + "/" + $name + ",group") } catch { return $null }
  }
  if (Is-Sid $g) { return Get-LocalGroup -SID $g -ErrorAction SilentlyContinue }
  return Get-LocalGroup -Name $g -ErrorAction SilentlyContinue
}
function Is-Member($grp, $name) {
  if ($useAdsi) { return [bool]($grp.psbase.Invoke('Members') | Where-Object { $_.GetType().InvokeMember('Name', 'GetProperty', $null, $_, $null) -eq $name }) }
  return [bool](Get-LocalGroupMember -Group $grp -ErrorAction SilentlyContinue | Where-Object { $_.Name.Split('\')[-1] -eq $name })
}
function Require-Managed($u) {
  if (-not ([string]$u.Description).StartsWith($prefix)) { Fail 'not_managed' $u.Name }
}
function Account-Info($u) {
  $groups = @()
  foreach ($k in $p.groups.PSObject.Properties) {
    $g = Find-Group $k.Value
    if ($g -and (Is-Member $g $u.Name)) { $groups += $k.Name }
  }
  $exp = $null
  if ($u.AccountExpires) { $exp = [long]([DateTimeOffset]$u.AccountExpires).ToUnixTimeMilliseconds() }
  return @{ name = [string]$u.Name; description = [string]$u.Description; enabled = [bool]$u.Enabled; expiresMs = $exp; groups = $groups }
}
function User-Sid($u) {
  if ($useAdsi) { return (New-Object Security.Principal.SecurityIdentifier($u.Adsi.objectSid.Value, 0)).Value }
  return $u.SID.Value
}
# Why an existing account must never be elevated (built-in accounts, RID below 1000:
# Administrator is 500; members of the protected groups), or $null.
function Protection($u) {
  $rid = [long]((User-Sid $u).Split('-')[-1])
  if ($rid -eq 500) { return 'the built-in Administrator (RID 500)' }
  if ($rid -lt 1000) { return 'a built-in account (RID below 1000)' }
  foreach ($pg in @($p.protectedGroups)) {
    if (-not $pg) { continue }
    $g = Find-Group $pg
    if ($g -and (Is-Member $g $u.Name)) { return 'a member of a protected group' }
  }
  return $null
}
function Expiry() { return [DateTimeOffset]::FromUnixTimeMilliseconds([long]$p.expiresMs).LocalDateTime }
try {
  switch ([string]$p.op) {
    'create' {
      if (Find-User $p.name) { Fail 'exists' $p.name }
      $pw = ConvertTo-SecureString -String ([string]$p.password) -AsPlainText -Force
      if ($useAdsi) {
        $u = $computer.Create('User', [string]$p.name)
        $u.SetPassword([string]$p.password); $u.Description = [string]$p.marker
        $u.UserFlags = 65536; $u.SetInfo()
        $u.InvokeSet('AccountExpirationDate', (Expiry)); $u.SetInfo()
      } else {
        New-LocalUser -Name $p.name -Password $pw -Description $p.marker -AccountExpires (Expiry) -PasswordNeverExpires | Out-Null
      }
      Out-Result @{ ok = $true }
    }
    'addToGroup' {
      $u = Find-User $p.name; if (-not $u) { Fail 'no_such_account' $p.name }
      Require-Managed $u
      $g = Find-Group $p.group; if (-not $g) { Fail 'no_such_group' $p.group }
      if (-not (Is-Member $g $u.Name)) {
        if ($useAdsi) { $g.Add("WinNT://" + $env:COMPUTERNAME + "/" + $u.Name) } else { Add-LocalGroupMember -Group $g -Member $u.Name }
      }
      Out-Result @{ ok = $true }
    }
    'removeFromGroup' {
      $u = Find-User $p.name; if (-not $u) { Out-Result @{ ok = $true }; break }
      Require-Managed $u
      $g = Find-Group $p.group; if (-not $g) { Fail 'no_such_group' $p.group }
      if (Is-Member $g $u.Name) {
        if ($useAdsi) { $g.Remove("WinNT://" + $env:COMPUTERNAME + "/" + $u.Name) } else { Remove-LocalGroupMember -Group $g -Member $u.Name }
      }
      Out-Result @{ ok = $true }
    }
    'findExisting' {
      $u = Find-User $p.name
      if (-not $u) { Out-Result @{ ok = $true; existing = $null }; break }
      $i = Account-Info $u
      Out-Result @{ ok = $true; existing = @{ name = $i.name; enabled = $i.enabled; expiresMs = $i.expiresMs; groups = $i.groups; protected = (Protection $u) } }
    }
    'isMember' {
      $g = Find-Group $p.group; if (-not $g) { Fail 'no_such_group' $p.group }
      $u = Find-User $p.name
      Out-Result @{ ok = $true; member = [bool]($u -and (Is-Member $g $u.Name)) }
    }
    'addMember' {
      # An existing account (no marker): refused when protected, checked here, in the call that adds.
      $u = Find-User $p.name; if (-not $u) { Fail 'no_such_account' $p.name }
      $why = Protection $u; if ($why) { Fail 'protected' $why }
      $g = Find-Group $p.group; if (-not $g) { Fail 'no_such_group' $p.group }
      if (-not (Is-Member $g $u.Name)) {
        if ($useAdsi) { $g.Add("WinNT://" + $env:COMPUTERNAME + "/" + $u.Name) } else { Add-LocalGroupMember -Group $g -Member $u.Name }
      }
      Out-Result @{ ok = $true }
    }
    'removeMember' {
      $u = Find-User $p.name; if (-not $u) { Out-Result @{ ok = $true }; break }
      $g = Find-Group $p.group; if (-not $g) { Fail 'no_such_group' $p.group }
      if (Is-Member $g $u.Name) {
        if ($useAdsi) { $g.Remove("WinNT://" + $env:COMPUTERNAME + "/" + $u.Name) } else { Remove-LocalGroupMember -Group $g -Member $u.Name }
      }
      Out-Result @{ ok = $true }
    }
    'disable' {
      $u = Find-User $p.name; if (-not $u) { Fail 'no_such_account' $p.name }
      Require-Managed $u
      if ($useAdsi) { $u.Adsi.UserFlags = ([int]$u.Adsi.UserFlags.Value -bor 2); $u.Adsi.SetInfo() } else { Disable-LocalUser -Name $u.Name }
      Out-Result @{ ok = $true }
    }
    'enable' {
      $u = Find-User $p.name; if (-not $u) { Fail 'no_such_account' $p.name }
      Require-Managed $u
      if ($useAdsi) { $u.Adsi.UserFlags = ([int]$u.Adsi.UserFlags.Value -band (-bnot 2)); $u.Adsi.InvokeSet('AccountExpirationDate', (Expiry)); $u.Adsi.SetInfo() }
      else { Set-LocalUser -Name $u.Name -AccountExpires (Expiry); Enable-LocalUser -Name $u.Name }
      Out-Result @{ ok = $true }
    }
    'setPassword' {
      $u = Find-User $p.name; if (-not $u) { Fail 'no_such_account' $p.name }
      Require-Managed $u
      if ($useAdsi) { $u.Adsi.SetPassword([string]$p.password); $u.Adsi.SetInfo() }
      else { Set-LocalUser -Name $u.Name -Password (ConvertTo-SecureString -String ([string]$p.password) -AsPlainText -Force) }
      Out-Result @{ ok = $true }
    }
    'setMarker' {
      $u = Find-User $p.name; if (-not $u) { Fail 'no_such_account' $p.name }
      Require-Managed $u
      if ($useAdsi) { $u.Adsi.Description = [string]$p.marker; $u.Adsi.SetInfo() } else { Set-LocalUser -Name $u.Name -Description $p.marker }
      Out-Result @{ ok = $true }
    }
    'delete' {
      $u = Find-User $p.name; if (-not $u) { Out-Result @{ ok = $true }; break }
      Require-Managed $u
      $sid = if ($useAdsi) { (New-Object Security.Principal.SecurityIdentifier($u.Adsi.objectSid.Value, 0)).Value } else { $u.SID.Value }
      if ($useAdsi) { $computer.Delete('User', $u.Name) } else { Remove-LocalUser -Name $u.Name }
      Get-CimInstance -ClassName Win32_UserProfile | Where-Object { $_.SID -eq $sid } | Remove-CimInstance
      Out-Result @{ ok = $true }
    }
    'get' {
      $u = Find-User $p.name
      if (-not $u) { Out-Result @{ ok = $true; account = $null } } else { Out-Result @{ ok = $true; account = (Account-Info $u) } }
    }
    'list' {
      $all = if ($useAdsi) { $computer.Children | Where-Object { $_.SchemaClassName -eq 'User' } | ForEach-Object { Find-User ([string]$_.Name.Value) } } else { Get-LocalUser }
      $out = @($all | Where-Object { ([string]$_.Description).StartsWith($prefix) } | ForEach-Object { Account-Info $_ })
      Out-Result @{ ok = $true; accounts = $out }
    }
    'logOff' {
      # End the account's logon sessions (RDP, console; disconnected ones
      # too), then stop its remaining processes: a disconnected session keeps
      # its token, and with it the admin group, until it is logged off
      # (what Windows LAPS' post-authentication actions do). The name never
      # reaches a command line: quser is run without arguments and filtered here.
      $name = [string]$p.name
      $u = Find-User $name
      if ($u) {
        Require-Managed $u
        $isOurs = { param($dom, $user) $user -eq $name -and ($dom -eq '' -or $dom -eq $env:COMPUTERNAME) }
      } else {
        # Not local: a domain account (the engine asks the computer's store for those too).
        # Never a built-in principal (RID below 1000: Administrator, krbtgt, Guest, ...).
        $rid = $null
        try { $rid = [int](((New-Object Security.Principal.NTAccount($name)).Translate([Security.Principal.SecurityIdentifier])).Value.Split('-')[-1]) } catch { }
        if ($rid -ne $null -and $rid -lt 1000) { Fail 'not_managed' $name }
        $isOurs = { param($dom, $user) $user -eq $name -and $dom -ne '' -and $dom -ne $env:COMPUTERNAME }
      }
      $sessions = 0
      if (Get-Command quser.exe -ErrorAction SilentlyContinue) {
        # quser: USERNAME SESSIONNAME ID STATE ...; the session name is blank for disconnected
        # sessions, so the ID is the first all-digit field. quser exits 1 when nobody is logged on.
        $lines = @(quser.exe 2>$null | Select-Object -Skip 1)
        foreach ($line in $lines) {
          $f = @(($line.TrimStart('>', ' ')) -split '\s+' | Where-Object { $_ -ne '' })
          if ($f.Count -lt 2) { continue }
          $id = $f[1..($f.Count - 1)] | Where-Object { $_ -match '^[0-9]+$' } | Select-Object -First 1
          # quser shows the bare user name; a same-named local and domain user cannot be told apart there, so the process owner below decides too.
          if ($id -ne $null -and $f[0] -eq $name) {
            $owners = @(Get-Process -IncludeUserName -ErrorAction SilentlyContinue | Where-Object { $_.SessionId -eq [int]$id -and $_.UserName } | ForEach-Object { $_.UserName } | Select-Object -Unique)
            $mine = $owners.Count -eq 0 -or [bool]($owners | Where-Object { $parts = $_.Split('\'); & $isOurs $(if ($parts.Count -gt 1) { $parts[0] } else { '' }) $parts[-1] })
            if ($mine) { logoff.exe $id 2>$null; $sessions++ }
          }
        }
      }
      $procs = @(Get-Process -IncludeUserName -ErrorAction SilentlyContinue | Where-Object { $_.UserName } | Where-Object { $parts = $_.UserName.Split('\'); & $isOurs $(if ($parts.Count -gt 1) { $parts[0] } else { '' }) $parts[-1] })
      foreach ($pr in $procs) { Stop-Process -Id $pr.Id -Force -ErrorAction SilentlyContinue }
      Out-Result @{ ok = $true; loggedOff = @{ sessions = $sessions; processes = $procs.Count } }
    }
    'check' { Out-Result @{ ok = $true; computer = $env:COMPUTERNAME; adsi = $useAdsi } }
    default { Fail 'bad_input' ('unknown op ' + $p.op) }
  }
} catch {
  $t = $_.Exception.GetType().Name
  $code = switch ($t) {
    'UserExistsException' { 'exists' }
    'InvalidPasswordException' { 'password_policy' }
    'GroupNotFoundException' { 'no_such_group' }
    'UserNotFoundException' { 'no_such_account' }
    'InvalidNameException' { 'invalid_name' }
    'AccessDeniedException' { 'access_denied' }
    default { 'failed' }
  }
  # ADSI reports password policy as HRESULT 0x800708C5 (NERR_PasswordTooShort).
  if ($_.Exception.HResult -eq -2147022651 -or $_.Exception.InnerException.HResult -eq -2147022651) { $code = 'password_policy' }
  Fail $code ($t + ': ' + $_.Exception.Message)
}
`;

/** `-EncodedCommand` takes base64 of the UTF-16LE script text. */
export const ENCODED_ACCOUNT_SCRIPT = Buffer.from(ACCOUNT_SCRIPT, 'utf16le').toString('base64');

export const POWERSHELL = 'powershell.exe';

/** The full, constant command line. */
export const ACCOUNT_SCRIPT_ARGS: readonly string[] = Object.freeze([
  '-NoProfile',
  '-NonInteractive',
  '-ExecutionPolicy',
  'Bypass',
  '-EncodedCommand',
  ENCODED_ACCOUNT_SCRIPT,
]);

export type ScriptOp =
  | 'create'
  | 'addToGroup'
  | 'removeFromGroup'
  | 'disable'
  | 'enable'
  | 'setPassword'
  | 'setMarker'
  | 'delete'
  | 'get'
  | 'list'
  | 'logOff'
  | 'findExisting'
  | 'isMember'
  | 'addMember'
  | 'removeMember'
  | 'check';

/** What travels on stdin (base64 of this as JSON). */
export interface ScriptInput {
  v: 1;
  op: ScriptOp;
  markerPrefix: string;
  /** Configured group name → Windows group name or SID (for get/list). */
  groups: Record<string, string>;
  name?: string;
  password?: string;
  marker?: string;
  expiresMs?: number;
  /** Windows group name or SID. */
  group?: string;
  /** Windows group names or SIDs whose members are never elevated (findExisting, addMember). */
  protectedGroups?: string[];
}

export type ScriptErrorCode =
  | 'exists'
  | 'not_managed'
  | 'no_such_group'
  | 'no_such_account'
  | 'password_policy'
  | 'invalid_name'
  | 'access_denied'
  | 'protected'
  | 'bad_input'
  | 'failed';

export interface ScriptAccount {
  name: string;
  description: string;
  enabled: boolean;
  expiresMs: number | null;
  groups: string[];
}

/** An existing account as findExisting reports it; `protected` is why it must never be elevated, or null. */
export interface ScriptExisting {
  name: string;
  enabled: boolean;
  /** AccountExpires as epoch ms, null for never (absent from scripts older than this field). */
  expiresMs?: number | null;
  groups: string[];
  protected: string | null;
}

export type ScriptOutput =
  | {
      ok: true; account?: ScriptAccount | null; accounts?: ScriptAccount[]; computer?: string; loggedOff?: { sessions: number; processes: number };
      existing?: ScriptExisting | null; member?: boolean;
    }
  | { ok: false; error: ScriptErrorCode; detail?: string };

export function encodeScriptInput(input: ScriptInput): Buffer {
  return Buffer.from(Buffer.from(JSON.stringify(input), 'utf8').toString('base64') + '\r\n', 'latin1');
}

/** Decode the script's stdout; null when it is not the expected base64 JSON. */
export function decodeScriptOutput(stdout: Buffer): ScriptOutput | null {
  const text = stdout.toString('latin1').trim();
  if (!/^[A-Za-z0-9+/=]+$/.test(text)) return null;
  try {
    const v: unknown = JSON.parse(Buffer.from(text, 'base64').toString('utf8'));
    if (typeof v !== 'object' || v === null || typeof (v as { ok?: unknown }).ok !== 'boolean') return null;
    return v as ScriptOutput;
  } catch {
    return null;
  }
}
