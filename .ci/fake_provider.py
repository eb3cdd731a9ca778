"""A stand-in for the AI providers during `.ci/schemathesis`, which cannot reach them:
every request is answered as the providers answer a key they do not know (401 with a
JSON reason), so saving a drawn key is a deterministic 422 `provider_key_invalid`, never
a 502 that depends on the network. Usage: python3 fake_provider.py <port-file>."""
import http.server
import json
import sys


class Refuse(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"error": {"message": "Incorrect API key provided."}}).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
