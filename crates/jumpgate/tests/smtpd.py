#!/usr/bin/env python3
"""A real SMTP server for the mail alert tests (aiosmtpd from PyPI).

STARTTLS required (with the certificate and key given), AUTH required
after TLS (one user, its password from a file), on 127.0.0.1 and a port
the OS picks; the port is written to --port-file once listening. Each
message is written to --dir as NNNNNN.json: the envelope (sender,
recipients), whether the session was under TLS (STARTTLS done) and
authenticated, as whom, and the message's text.

Stops by itself after --lifetime seconds (the test also kills it).
"""

import argparse
import asyncio
import itertools
import json
import os
import ssl

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--lifetime", type=float, default=300)
    a = p.parse_args()
    with open(a.password_file, "rb") as f:
        password = f.read().rstrip(b"\n")
    user = a.user.encode()
    counter = itertools.count(1)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user
            and auth_data.password == password
        )
        return AuthResult(success=ok)

    class Spool:
        async def handle_DATA(self, server, session, envelope):
            n = next(counter)
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "authenticated": bool(session.authenticated),
                "data": envelope.content.decode("utf-8", "replace"),
            }
            tmp = os.path.join(a.dir, f".{n:06}.tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.rename(tmp, os.path.join(a.dir, f"{n:06}.json"))
            return "250 OK"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(
                Spool(),
                hostname="localhost",
                tls_context=ctx,
                require_starttls=True,
                auth_required=True,
                auth_require_tls=True,
                authenticator=authenticator,
                loop=loop,
            ),
            host="127.0.0.1",
            port=0,
        )
        port = server.sockets[0].getsockname()[1]
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, a.port_file)
        await asyncio.sleep(a.lifetime)
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
