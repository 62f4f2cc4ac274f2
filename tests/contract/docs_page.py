"""Opens /api/docs in headless Chromium and makes one call from it, as a person would.

Drives Debian's `chromium` over the DevTools protocol on a pipe (`--remote-debugging-pipe`), with
the standard library only. Waits for Swagger UI to render the operations, signs in through its
"Authorize" dialog with the given bearer token (typed as keystrokes), opens `GET /api/v1/auth/me`,
presses "Try it out" and "Execute", and waits for the answer Swagger UI shows. Prints one JSON
object: how many operations rendered, the status and body shown, and what the page logged as
errors (a script refused by the Content-Security-Policy would be there).

Usage: docs_page.py BASE_URL TOKEN
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

DEADLINE_SECONDS = 60


class Browser:
    def __init__(self, profile):
        commands_read, self.commands = os.pipe()
        self.events, events_write = os.pipe()
        # Chromium reads commands from fd 3 and writes to fd 4. Moved out of the way first, so
        # that putting one in place cannot overwrite the other.
        commands_read, events_write = os.dup(commands_read), os.dup(events_write)

        def on_fds_3_and_4():
            os.dup2(commands_read, 100)
            os.dup2(events_write, 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        self.process = subprocess.Popen(
            [
                "chromium",
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            preexec_fn=on_fds_3_and_4,
            close_fds=False,
            # Its own process group, so that closing it stops its helper processes too.
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_read)
        os.close(events_write)
        self.buffer = b""
        self.next_id = 0
        self.session = None
        self.errors = []

    def _read_message(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.events, 65536)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("method") == "Runtime.exceptionThrown":
                self.errors.append(reply["params"]["exceptionDetails"].get("text", "exception"))
            if reply.get("method") == "Log.entryAdded" and reply["params"]["entry"]["level"] == "error":
                self.errors.append(reply["params"]["entry"].get("text", "error"))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what):
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"timed out waiting for {what}")

    def click(self, selector):
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (e) e.click(); return !!e; }})()"
        )
        if not found:
            raise RuntimeError(f"nothing matches {selector}")

    def close(self):
        """Asks Chromium to close, then stops whatever of it is left, before its profile is removed."""
        try:
            self.send("Browser.close", session=False)
        except (OSError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def main(base_url, token):
    # A helper process may still be writing to the profile as the group is stopped.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser = Browser(profile)
        try:
            target = browser.send("Target.createTarget", {"url": "about:blank"}, session=False)
            attached = browser.send(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=False
            )
            browser.session = attached["sessionId"]
            browser.send("Runtime.enable")
            browser.send("Log.enable")
            browser.send("Page.enable")
            browser.send("Page.navigate", {"url": f"{base_url}/api/docs"})

            operations = browser.wait_for(
                "document.querySelectorAll('.opblock').length > 30 && document.querySelectorAll('.opblock').length",
                "the operations to render",
            )

            # Authorize: the dialog's token field, typed into, then its Authorize button.
            browser.click("button.authorize")
            browser.wait_for("!!document.querySelector('.modal-ux input')", "the Authorize dialog")
            browser.evaluate("document.querySelector('.modal-ux input').focus()")
            browser.send("Input.insertText", {"text": token})
            browser.click(".modal-ux .auth-btn-wrapper button.authorize")
            browser.wait_for("!!document.querySelector('.modal-ux button.btn-done')", "the token to be accepted")
            browser.click(".modal-ux button.btn-done")

            # Open GET /api/v1/auth/me, try it out, execute.
            operation = "#operations-auth-me"
            browser.click(f"{operation} .opblock-summary-control")
            browser.wait_for(f"!!document.querySelector('{operation} .try-out__btn')", "the operation to open")
            browser.click(f"{operation} .try-out__btn")
            browser.wait_for(f"!!document.querySelector('{operation} .execute')", "the Execute button")
            browser.click(f"{operation} .execute")
            status = browser.wait_for(
                f"(document.querySelector('{operation} .live-responses-table tbody .response-col_status') || {{}}).innerText",
                "the response",
            )
            body = browser.evaluate(
                f"(document.querySelector('{operation} .live-responses-table .response-col_description pre') || {{}}).innerText"
            )
            print(
                json.dumps(
                    {"operations": operations, "status": status.strip(), "body": body, "errors": browser.errors}
                )
            )
        finally:
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
