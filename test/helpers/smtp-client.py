"""Send messages to a relay with Python's smtplib (a client relay365 did not write).
usage: smtp-client.py PORT FROM TO COUNT PREFIX [user password]
Prints one line per message: "<message-id> <reply code>" (code 0 when the connection failed).
With SMTP_CLIENT_LARGE=N:BYTES every Nth message gets about BYTES of body lines."""
import os, smtplib, sys
port, sender, rcpt, count, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
creds = sys.argv[6:8]
every, size = (int(x) for x in os.environ.get("SMTP_CLIENT_LARGE", "0:0").split(":"))
for i in range(count):
    mid = f"{prefix}-{i}@relay365.test"
    pad = ("x" * 76 + "\r\n") * (size // 78) if every and i % every == 0 else ""
    msg = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {prefix} {i}\r\nMessage-ID: <{mid}>\r\n\r\nbody {i}\r\n{pad}"
    try:
        s = smtplib.SMTP('127.0.0.1', port, timeout=20)
        s.ehlo()
        if creds:
            s.login(creds[0], creds[1])
        s.mail(sender)
        s.rcpt(rcpt)
        code, _ = s.data(msg.encode())
        s.quit()
        print(mid, code, flush=True)
    except Exception as e:
        print(mid, 0, type(e).__name__, flush=True)
