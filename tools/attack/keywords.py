"""Curated keyword rules: tools, commands and phrases that name an ATT&CK technique.

Written from ATT&CK's own technique pages and common SOC knowledge (the tools, binaries and
phrasings that detection content and threat reports use for each technique), for the
techniques seen most often in intrusions. They complement the statistical ranking, which
cannot know that ``schtasks`` is a scheduled task or ``mimikatz`` reads LSASS memory.
No sentence of the evaluation data is a rule; a few patterns were broadened after reading
misses on the tune half of TRAM (``evals/technique_mapping.py``), never on the test half.

Each pattern is a case-insensitive regular expression matched on word boundaries against the
lower-cased text; several patterns per technique add up (see ``mapping.py``).
"""

from __future__ import annotations

from typing import Final

KEYWORD_RULES: Final[dict[str, tuple[str, ...]]] = {
    # Execution
    "T1059": (r"command[- ]line interpreter", r"scripting interpreter"),
    "T1059.001": (
        r"powershell",
        r"pwsh",
        r"invoke-expression",
        r"iex",
        r"-enc(odedcommand)?",
        r"downloadstring",
        r"invoke-webrequest",
    ),
    "T1059.003": (
        r"cmd(\.exe)?",
        r"cmd /c",
        r"command prompt",
        r"windows command shell",
        r"batch (file|script)s?",
        r"\.bat",
    ),
    "T1059.004": (r"bash", r"/bin/(ba)?sh", r"zsh", r"unix shell", r"shell scripts?"),
    "T1059.005": (r"vbscript", r"vbs", r"vba", r"visual basic", r"wscript(\.exe)?"),
    "T1059.006": (r"python (script|code)s?", r"python"),
    "T1059.007": (r"javascript", r"jscript", r"\.js"),
    "T1047": (r"wmi", r"wmic(\.exe)?", r"windows management instrumentation", r"win32_process"),
    "T1053.005": (r"schtasks(\.exe)?", r"scheduled tasks?", r"task scheduler"),
    "T1053.003": (r"crontab", r"cron jobs?"),
    "T1569.002": (r"psexec", r"paexec", r"remcom", r"sc start", r"service execution"),
    "T1106": (
        r"native api",
        r"windows api",
        r"api (calls?|functions?)",
        r"createprocess[aw]?",
        r"virtualalloc(ex)?",
        r"ntcreate\w*",
        r"getprocaddress",
        r"shellexecute(ex)?[aw]?",
        r"winexec",
    ),
    "T1204.002": (
        r"(user|victim|target|recipient)s? .{0,20}(opens?|opened|opening|double-click\w*|"
        r"clicks?|clicked|clicking|runs?|execut\w+|launch\w*) .{0,30}(attachment|document|"
        r"file|executable|lnk|shortcut|archive)",
        r"(executed|opened|launched|run) by the (user|victim|target|recipient)",
        r"lure (the )?(users?|victims?|targets?|recipients?)",
        r"enable (content|macros|editing)",
        r"lure (document|file)s?",
        r"malicious (document|file)s? (is|was) (opened|executed)",
    ),
    "T1204.001": (r"click\w* (on )?(a |the )?(malicious )?(link|url)",),
    "T1203": (
        r"equation editor",
        r"cve-2017-11882",
        r"exploit\w* (a )?(vulnerability in )?(microsoft )?(word|office|adobe|acrobat|browser)",
    ),
    "T1559.002": (r"dde", r"dynamic data exchange"),
    "T1072": (r"sccm", r"software deployment (tools?|systems?)", r"pdq deploy"),
    # Persistence and privilege escalation
    "T1547.001": (
        r"currentversion\\+run(once)?",
        r"run ?keys?",
        r"runonce",
        r"startup folder",
        r"autorun registry",
    ),
    "T1543.003": (
        r"sc(\.exe)? create",
        r"windows services?",
        r"(creates?|created|install\w*|registers?|registered) (a |an )?(new |malicious )?"
        r"(windows )?service",
        r"as a service",
    ),
    "T1543.002": (r"systemd (service|unit)s?",),
    "T1546.003": (r"wmi event subscriptions?", r"__eventfilter", r"permanent wmi"),
    "T1546.008": (r"sethc(\.exe)?", r"utilman(\.exe)?", r"sticky keys", r"accessibility features"),
    "T1136": (r"net user \S+ \S+ /add", r"creates? (a )?(new )?(local |domain )?(user )?accounts?"),
    "T1098": (r"(added|adds) .{0,40}to the (local )?administrators group", r"account manipulation"),
    "T1505.003": (r"web ?shells?", r"china chopper"),
    "T1133": (r"vpn", r"citrix", r"external remote services?"),
    "T1078": (
        r"valid (user )?(accounts?|credentials)",
        r"legitimate (user )?(accounts?|credentials)",
        r"(stolen|compromised|harvested|obtained) (user )?(credentials|accounts?)",
        r"(log(ged)?|sign(ed)?) (in|on) (with|using) .{0,30}(credentials|accounts?)",
        r"(us|leverag|abus|reus)\w* (the |these |those |their |its |stolen |compromised |"
        r"valid |legitimate |obtained |harvested )+(credentials|accounts?)",
        r"(privileged|admin\w*|service|domain|cloud|local|vpn) accounts? to (access|log|move|"
        r"authenticate|connect)",
    ),
    "T1078.002": (r"domain admin(istrator)? (account|credentials)",),
    "T1548.002": (
        r"uac",
        r"user account control",
        r"fodhelper(\.exe)?",
        r"eventvwr(\.exe)?",
        r"bypass\w* uac",
    ),
    "T1134": (r"access tokens?", r"token (impersonation|manipulation|theft)"),
    "T1068": (
        r"privilege escalation (vulnerabilit\w+|exploits?|flaw)",
        r"local privilege escalation",
        r"exploit\w* .{0,40}(escalate|elevate|gain) (its |their )?privileges",
        r"kernel exploits?",
    ),
    "T1484.001": (r"group polic(y|ies)", r"gpos?"),
    "T1574.001": (
        r"dll side-?loading",
        r"side-?load(s|ed|ing)?",
        r"dll search order hijack\w*",
        r"dll hijack\w*",
    ),
    "T1055": (
        r"process injection",
        r"inject(s|ed|ing)? .{0,40}into",
        r"code injection",
        r"createremotethread",
        r"writeprocessmemory",
        r"virtualallocex",
    ),
    "T1055.012": (r"process hollowing", r"hollow(s|ed|ing)"),
    "T1055.001": (r"dll injection", r"inject\w* (a |the |its )?(malicious )?dll"),
    "T1620": (r"reflective(ly)? (load\w*|dll|pe)", r"reflective code loading"),
    # Defense evasion
    "T1027": (
        r"obfuscat\w+",
        r"encrypted (payload|strings?|configuration|config|shellcode|data|binary|file)s?",
        r"xor(ed)?",
        r"encod(ed|es|ing) (payload|strings?|data|configuration|shellcode)",
        r"(string|code) encryption",
    ),
    "T1027.002": (r"upx", r"packers?", r"packed (with|using)", r"software packing"),
    "T1140": (
        r"decod(e|es|ed|ing)",
        r"decrypt(s|ed|ing|ion)?",
        r"deobfuscat\w+",
        r"unpack(s|ed|ing)?",
        r"certutil(\.exe)? .{0,20}-decode",
    ),
    "T1036": (r"masquerad\w+",),
    "T1036.005": (
        r"(masquerad\w+|disguis\w+|pos(es|ing)) as (a )?legitimate",
        r"legitimate (file ?names?|names?|locations?|directories|processes)",
        r"mimic\w* (a )?legitimate",
        r"named (after|like) (a )?legitimate",
        r"match legitimate",
    ),
    "T1562.001": (
        r"disabl\w+ .{0,30}(defender|antivirus|anti-virus|security (tools?|software|products?|"
        r"services?)|av|edr|protection|logging)",
        r"set-mppreference",
        r"(kill|terminat|stop)\w* .{0,30}(security|antivirus|anti-virus|av|edr) "
        r"(processes|products?|software|services?|tools?)",
        r"exclusions? (to|in) (windows )?defender",
        r"tamper\w* (with )?(security|protection)",
    ),
    "T1562.004": (r"netsh (advfirewall )?firewall", r"disabl\w+ (the )?(windows )?firewall"),
    "T1070.004": (
        r"delet(e|es|ed|ing) (itself|the (file|dropper|payload|original|executable|binary)|"
        r"files|traces|artifacts|evidence)",
        r"self-delet\w+",
        r"remov(e|es|ed|ing) (itself|the (dropper|payload|original|executable))",
        r"sdelete",
        r"del /[fq]",
        r"file deletion",
    ),
    "T1070.001": (
        r"wevtutil(\.exe)? cl",
        r"clear\w* (the )?(windows )?(event|security|system) logs?",
        r"clear-eventlog",
    ),
    "T1070.006": (r"timestomp\w*", r"modif\w+ (the )?(file )?timestamps?"),
    "T1564.001": (
        r"hidden (files?|folders?|director(y|ies)|attribute)",
        r"attrib(\.exe)? \+h",
        r"hid(e|es|ing) (the |its )?(files?|folders?|director(y|ies))",
    ),
    "T1564.003": (r"hidden window", r"-w(indowstyle)? hidden"),
    "T1218.011": (r"rundll32(\.exe)?",),
    "T1218.010": (r"regsvr32(\.exe)?", r"squiblydoo"),
    "T1218.005": (r"mshta(\.exe)?", r"\.hta"),
    "T1218.007": (r"msiexec(\.exe)?",),
    "T1127.001": (r"msbuild(\.exe)?",),
    "T1497": (
        r"sandbox(es)?",
        r"virtual machines?",
        r"vmware",
        r"virtualbox",
        r"anti-(vm|sandbox|analysis)",
    ),
    "T1622": (r"isdebuggerpresent", r"anti-debug\w*", r"debuggers?"),
    "T1553.002": (
        r"code signing certificates?",
        r"(signed|signs) with (a )?(valid|stolen|legitimate|revoked) (digital )?certificates?",
        r"digitally signed",
    ),
    "T1112": (
        r"modif(y|ies|ied|ying) (the )?(windows )?registry",
        r"reg(\.exe)? add",
        r"(writes?|wrote|sets?|creates?|created|adds?|added) .{0,30}registry (values?|keys?)",
        r"registry modification",
    ),
    "T1014": (r"rootkits?",),
    "T1542.003": (r"bootkits?", r"master boot record", r"mbr"),
    "T1197": (r"bitsadmin(\.exe)?", r"bits jobs?"),
    # Credential access
    "T1003": (
        r"credential dump\w*",
        r"dump\w* (the )?(credentials|passwords|password hashes|hashes)",
        r"hashdump",
    ),
    "T1003.001": (r"lsass(\.exe)?", r"mimikatz", r"sekurlsa", r"comsvcs(\.dll)?", r"minidump"),
    "T1003.002": (r"security account manager", r"sam (database|hive)", r"reg save hklm\\+sam"),
    "T1003.003": (r"ntds(\.dit)?", r"ntdsutil"),
    "T1003.006": (r"dcsync", r"directory replication"),
    "T1110": (r"brute[- ]forc\w+", r"password guessing", r"password spraying"),
    "T1555.003": (
        r"(browser|chrome|firefox|edge)('s)? (saved )?(passwords|credentials|logins)",
        r"saved (passwords|credentials) .{0,20}browsers?",
        r"login data",
    ),
    "T1552.001": (
        r"credentials (stored )?in files",
        r"passwords? (stored )?in (configuration |config |plain[- ]?text )?files",
        r"plain[- ]?text (passwords?|credentials)",
    ),
    "T1056.001": (r"keylog\w*", r"keystrokes?", r"key ?strokes"),
    "T1557.001": (r"llmnr", r"nbt-ns", r"responder", r"smb relay"),
    "T1558.003": (r"kerberoast\w*",),
    "T1558.001": (r"golden tickets?",),
    "T1550.002": (r"pass[- ]the[- ]hash",),
    "T1550.003": (r"pass[- ]the[- ]ticket",),
    "T1539": (r"(session )?cookies",),
    "T1621": (r"mfa fatigue", r"push (bombing|spam\w*)", r"mfa request"),
    # Discovery
    "T1082": (
        r"system ?info(rmation)?",
        r"operating system (version|information|details)",
        r"os (version|information|details)",
        r"computer ?names?",
        r"host ?names?",
        r"(information|details|data) about the (infected |compromised |victim('s)? )?"
        r"(system|host|machine|computer|device)",
        r"(processor|cpu) architecture",
    ),
    "T1083": (
        r"(enumerat|search|list|look|scan|travers)\w* (for |through |the )?(specific )?"
        r"(files|director(y|ies)|folders|drives)",
        r"file (and|&) directory discovery",
        r"dir (/s|command)",
    ),
    "T1057": (
        r"tasklist(\.exe)?",
        r"running process(es)?",
        r"process(es)? (list|listing)",
        r"list of (running )?process(es)?",
        r"enumerat\w+ (the )?(running )?process(es)?",
        r"process discovery",
    ),
    "T1016": (
        r"ipconfig(\.exe)?",
        r"ifconfig",
        r"network configuration",
        r"network (adapters?|interfaces?)",
        r"mac address(es)?",
        r"arp -a",
        r"route print",
    ),
    "T1049": (r"netstat(\.exe)?", r"network connections"),
    "T1033": (
        r"whoami(\.exe)?",
        r"user ?names?",
        r"current(ly)? (logged[- ]on )?users?",
        r"logged[- ]on users?",
        r"system owner",
    ),
    "T1087": (r"net user", r"enumerat\w+ (the )?(user |domain )?accounts", r"account discovery"),
    "T1087.002": (r"net user /domain", r"domain (users|accounts)", r"adfind"),
    "T1069": (r"net (local)?group", r"domain admins", r"group membership"),
    "T1018": (r"net view", r"remote systems?", r"ping sweep", r"nltest"),
    "T1482": (r"domain_trusts", r"domain trusts?"),
    "T1046": (
        r"port scan\w*",
        r"nmap",
        r"masscan",
        r"advanced (ip|port) scanner",
        r"scan\w* (the )?(internal )?(network|ports|hosts)",
    ),
    "T1135": (r"net share", r"network shares?", r"shared (drives|folders)"),
    "T1518.001": (
        r"(antivirus|anti-virus|security|av|edr) (software|products?|solutions?|programs?|tools?)"
        r" (is |are )?(installed|running|present)",
        r"(check|look|search|detect|enumerat|quer)\w* (for )?(the )?(presence of )?(installed )?"
        r"(antivirus|anti-virus|security software|security products?|av products?|edr)",
        r"security software discovery",
    ),
    "T1518": (r"installed (software|applications|programs)", r"software discovery"),
    "T1012": (
        r"quer(y|ies|ied|ying) (the )?registry",
        r"reg(\.exe)? query",
        r"reads? (the )?registry",
        r"registry quer(y|ies)",
    ),
    "T1007": (r"sc query", r"enumerat\w+ (the )?services", r"list of (installed )?services"),
    "T1124": (r"system time", r"net time", r"w32tm"),
    "T1614.001": (r"system language", r"keyboard layouts?", r"getkeyboardlayout"),
    "T1201": (r"password polic(y|ies)", r"net accounts"),
    "T1217": (r"browser history", r"bookmarks"),
    "T1010": (r"window titles?", r"foreground window"),
    "T1120": (r"usb devices", r"peripheral devices?"),
    # Lateral movement
    "T1021.001": (r"rdp", r"remote desktop( protocol)?", r"mstsc(\.exe)?", r"3389"),
    "T1021.002": (r"admin\$", r"c\$", r"ipc\$", r"smb shares?", r"windows admin shares"),
    "T1021.004": (r"ssh",),
    "T1021.006": (r"winrm", r"windows remote management", r"evil-winrm"),
    "T1210": (
        r"eternalblue",
        r"ms17-010",
        r"bluekeep",
        r"zerologon",
        r"exploit\w* .{0,30}(remote|smb|rdp) services?",
    ),
    "T1570": (
        r"lateral tool transfer",
        r"(cop(y|ies|ied)|transferr?\w*|mov(ed|es)|push\w*|dropp\w+) .{0,60}to (other|remote|"
        r"multiple|additional|several|the other) (hosts|systems|machines|servers|workstations|"
        r"endpoints|computers)",
    ),
    "T1091": (r"usb (drives?|sticks?)", r"removable (media|drives?)"),
    # Collection
    "T1005": (
        r"(from|on) the local (system|machine|host)",
        r"local (files|data)",
        r"(collect|steal|gather|harvest)\w* (the )?(files|documents|data) from",
    ),
    "T1039": (r"network shared? drives?",),
    "T1074.001": (
        r"stag(e|ed|es|ing) (the )?(collected |stolen )?(data|files)",
        r"staging (directory|folder|area)",
        r"local data staging",
    ),
    "T1560.001": (r"winrar", r"rar(\.exe)?", r"7-?zip", r"7z(\.exe)?", r"zip archives?"),
    "T1560": (r"archiv\w+ (the )?(collected|stolen) (data|files)", r"compress\w+ (the )?data"),
    "T1113": (
        r"screen ?shots?",
        r"screen captur\w*",
        r"captur\w+ (the |a )?(victim's )?(screen|desktop)",
    ),
    "T1115": (r"clipboard",),
    "T1125": (r"webcam", r"video capture"),
    "T1123": (r"microphone", r"audio (capture|recording)"),
    "T1114": (r"email collection", r"mailbox(es)?", r"\.pst"),
    "T1119": (r"automated collection",),
    # Command and control
    "T1071.001": (
        r"https?( (requests?|post|get|protocol|traffic|communications?|connections?|beacon\w*))",
        r"(over|via|using|through) https?",
        r"web protocols?",
        r"user[- ]agent",
    ),
    "T1071.004": (r"dns tunnel\w*", r"dns (quer(y|ies)|requests|records?)", r"txt records?"),
    "T1071.002": (r"ftp",),
    "T1071.003": (r"smtp", r"imap", r"pop3"),
    "T1573.001": (
        r"(aes|rc4|des|3des|blowfish|chacha20?|salsa20|xor)(-\d+)?[- ](encrypt\w*|key|algorithm)",
        r"symmetric (encryption|cryptography|key)",
        r"encrypt\w* (the |its )?(c2|c&c|command and control|communications?|traffic|network)",
    ),
    "T1573.002": (r"rsa", r"asymmetric (encryption|cryptography)", r"public key"),
    "T1573": (r"encrypted (channel|communications?|traffic)", r"ssl", r"tls"),
    "T1095": (
        r"raw (tcp|udp|sockets?)",
        r"custom (tcp|udp|binary|network) protocols?",
        r"icmp",
        r"(over|via) (raw )?(tcp|udp)",
        r"tcp (sockets?|connections?)",
        r"non-application layer protocol",
    ),
    "T1090": (r"prox(y|ies)", r"socks[45]?", r"relay(s|ed)? (traffic|c2|communications?)"),
    "T1090.003": (r"tor", r"multi-hop prox(y|ies)", r"onion"),
    "T1572": (r"tunnel(s|ed|ing)?", r"ngrok", r"plink", r"ssh tunnel\w*"),
    "T1105": (
        r"(download|fetch|retriev|pull)\w* .{0,40}(payloads?|tools?|files?|modules?|malware|"
        r"components?|executables?|binar(y|ies)|scripts?|stages?|plugins?|updates?)",
        r"download(s|ed|ing)? and (execut|run)\w*",
        r"certutil(\.exe)? .{0,30}-urlcache",
        r"bitsadmin(\.exe)? .{0,30}/transfer",
        r"wget",
        r"curl",
        r"ingress tool transfer",
        r"downloaders?",
    ),
    "T1219": (
        r"anydesk",
        r"teamviewer",
        r"screenconnect",
        r"connectwise",
        r"atera",
        r"splashtop",
        r"netsupport",
        r"ammyy",
        r"logmein",
        r"remote (access|administration|management|monitoring) (tools?|software|applications?)",
        r"rmm (tools?|software)",
    ),
    "T1102": (
        r"(pastebin|github|telegram|google docs|dropbox|twitter|discord|slack)"
        r" (for|as) (its )?(c2|c&c|command and control)",
        r"legitimate web services?",
    ),
    "T1568.002": (r"domain generation algorithms?", r"dga"),
    "T1571": (r"non-standard ports?", r"uncommon ports?"),
    "T1008": (r"fallback (c2|servers?|channels?)", r"backup (c2|servers?)"),
    # Exfiltration
    "T1041": (
        r"exfiltrat\w+ .{0,40}(over|via|through|using) (the |its |a )?(existing )?"
        r"(c2|c&c|command and control)",
        r"(send|sends|sent|upload\w*) (the )?(collected|stolen|gathered|harvested)? ?"
        r"(data|information|files) (back )?to (the |its |a )?(c2|c&c|command and control|"
        r"remote) ?(servers?|channel)?",
        r"exfiltration over c2",
    ),
    "T1048": (r"exfiltrat\w+ .{0,30}(over|via) (ftp|dns|smtp|icmp)",),
    "T1567.002": (r"mega\.nz", r"rclone", r"exfiltrat\w+ .{0,30}cloud storage"),
    "T1567": (r"exfiltrat\w+ .{0,30}web services?",),
    "T1020": (r"automated exfiltration",),
    # Initial access
    "T1566": (r"phishing",),
    "T1566.001": (
        r"spear-?phishing (e-?mails?|messages?) .{0,40}attach\w+",
        r"malicious attachments?",
        r"(phishing|spam|malicious|spoofed) e-?mails? .{0,60}attach\w*",
        r"e-?mails? (with|containing|carrying|that contain\w*) .{0,40}(attach\w*|documents?|"
        r"zip|archives?|\.(docx?|xlsx?|rtf|pdf|iso|lnk|zip|rar))",
        r"(e-?mail|phishing) attachments?",
        r"attached (documents?|files?|archives?)",
        r"spearphishing attachment",
    ),
    "T1566.002": (
        r"(phishing|spear-?phishing) (e-?mails?|messages?) .{0,40}links?",
        r"malicious (links?|urls?)",
        r"spearphishing link",
    ),
    "T1190": (
        r"public[- ]facing",
        r"internet[- ]facing (servers?|applications?|systems?)",
        r"sql injection",
        r"proxy(shell|logon|notshell)",
        r"log4(j|shell)",
        r"exploit\w* .{0,40}(vulnerabilit\w+|flaw) in .{0,30}(server|appliance|vpn|gateway|"
        r"application|exchange|citrix|fortinet|pulse)",
    ),
    "T1189": (r"drive-by", r"watering[- ]hole", r"exploit kits?"),
    "T1195.002": (r"supply[- ]chain", r"trojani[sz]ed (updates?|installers?|software)"),
    "T1199": (r"managed service providers?", r"trusted relationships?"),
    # Impact
    "T1486": (
        r"ransomware",
        r"encrypt\w* (the )?(victim'?s?'? |all )?files",
        r"ransom notes?",
        r"data encrypted for impact",
    ),
    "T1490": (
        r"vssadmin(\.exe)?",
        r"shadow cop(y|ies)",
        r"bcdedit(\.exe)?",
        r"wbadmin(\.exe)?",
        r"inhibit system recovery",
    ),
    "T1489": (r"stop(s|ped|ping)? (the )?services", r"net stop", r"service stop"),
    "T1485": (r"wipers?", r"data destruction"),
    "T1496": (r"crypto-?min\w+", r"xmrig", r"coin ?miners?", r"resource hijacking"),
    "T1498": (r"ddos", r"denial[- ]of[- ]service"),
}
"""ATT&CK id → regular expressions whose match in a text is evidence for that technique."""
