"""moto's AWS server with the RDS calls moto lacks, for supamigrate's tests.

moto implements RDS's instances and parameter groups but not
DescribeDBEngineVersions nor ResetDBParameterGroup: this answers the first
from the versions given in SUPAMIGRATE_ENGINE_VERSIONS (JSON: [{"version",
"family", "status"}]), the second on moto's own parameter groups, and hands
every other request to moto. It also keeps every RDS request's form
parameters (GET /stub/requests, JSON) and answers a chosen action with an
AWS error once it is set (POST /stub/fail, JSON {"action", "code",
"message", "status"}), so tests can check what the client asked and how it
handles a refusal.

For a migration into a made instance (`run --create-instance`), two
more settings: SUPAMIGRATE_RDS_ENDPOINT ("host:port") is the endpoint every
instance reports (a local server standing in for it), and
SUPAMIGRATE_RDS_MASTER_PASSWORD the password a managed master secret holds
(moto would put a fixed one there).

    python rds_api.py PORT
"""
import json
import os
import sys
import threading
from io import BytesIO
from urllib.parse import parse_qsl

from moto.core import DEFAULT_ACCOUNT_ID
from moto.rds.models import DBInstance, MasterUserSecret, rds_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

VERSIONS = json.loads(os.environ.get("SUPAMIGRATE_ENGINE_VERSIONS", "[]"))
NS = "http://rds.amazonaws.com/doc/2014-10-31/"
lock = threading.Lock()
requests = []
failures = []


def xml_response(start_response, status, body):
    data = body.encode()
    start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))])
    return [data]


def json_response(start_response, value):
    data = json.dumps(value).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def engine_versions(params):
    wanted = params.get("EngineVersion")
    rows = []
    for v in VERSIONS:
        if params.get("Engine", "postgres") != "postgres":
            continue
        if wanted and not (v["version"] == wanted or v["version"].split(".")[0] == wanted):
            continue
        rows.append(
            "<DBEngineVersion><Engine>postgres</Engine>"
            f"<EngineVersion>{v['version']}</EngineVersion>"
            f"<MajorEngineVersion>{v['version'].split('.')[0]}</MajorEngineVersion>"
            f"<DBParameterGroupFamily>{v['family']}</DBParameterGroupFamily>"
            f"<Status>{v.get('status', 'available')}</Status></DBEngineVersion>"
        )
    return (
        f'<DescribeDBEngineVersionsResponse xmlns="{NS}"><DescribeDBEngineVersionsResult>'
        f"<DBEngineVersions>{''.join(rows)}</DBEngineVersions></DescribeDBEngineVersionsResult>"
        "<ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></DescribeDBEngineVersionsResponse>"
    )


def region_of(environ):
    # The credential scope: Credential=KEY/DATE/REGION/rds/aws4_request.
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split("Credential=")[1].split("/")[2]
    except IndexError:
        return "us-east-1"


def reset_parameters(environ, params):
    name = params.get("DBParameterGroupName", "")
    groups = rds_backends[DEFAULT_ACCOUNT_ID][region_of(environ)].db_parameter_groups
    if name not in groups:
        return "404 Not Found", error("DBParameterGroupNotFound", f"DBParameterGroup {name} not found.")
    group = groups[name]
    if params.get("ResetAllParameters") == "true":
        group.parameters.clear()
    i = 1
    while f"Parameters.Parameter.{i}.ParameterName" in params:
        group.parameters.pop(params[f"Parameters.Parameter.{i}.ParameterName"], None)
        i += 1
    return "200 OK", (
        f'<ResetDBParameterGroupResponse xmlns="{NS}"><ResetDBParameterGroupResult>'
        f"<DBParameterGroupName>{name}</DBParameterGroupName></ResetDBParameterGroupResult>"
        "<ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></ResetDBParameterGroupResponse>"
    )


def error(code, message):
    return (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>stub</RequestId></ErrorResponse>"
    )


class Stub:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if path == "/stub/requests":
            with lock:
                return json_response(start_response, requests)
        if path == "/stub/fail":
            with lock:
                failures.append(json.loads(body))
            return json_response(start_response, {"ok": True})
        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        action = params.get("Action")
        if action:
            with lock:
                requests.append(params)
                hit = next((f for f in failures if f["action"] == action), None)
                if hit:
                    failures.remove(hit)
            if hit:
                return xml_response(start_response, f"{hit.get('status', 400)} Error", error(hit["code"], hit["message"]))
            if action == "DescribeDBEngineVersions":
                return xml_response(start_response, "200 OK", engine_versions(params))
            if action == "ResetDBParameterGroup":
                status, xml = reset_parameters(environ, params)
                return xml_response(start_response, status, xml)
        environ["wsgi.input"] = BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def stand_in():
    endpoint = os.environ.get("SUPAMIGRATE_RDS_ENDPOINT")
    if endpoint:
        host, port = endpoint.rsplit(":", 1)
        DBInstance.address = property(lambda self: host)
        init = DBInstance.__init__

        def with_port(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.port = int(port)

        DBInstance.__init__ = with_port
    password = os.environ.get("SUPAMIGRATE_RDS_MASTER_PASSWORD")
    if password:
        MasterUserSecret._generate_secret_string = lambda self: json.dumps(
            {"username": self.resource.master_username, "password": password}
        )


if __name__ == "__main__":
    stand_in()
    port = int(sys.argv[1])
    app = Stub(DomainDispatcherApplication(create_backend_app))
    run_simple("127.0.0.1", port, app, threaded=True, use_reloader=False, use_debugger=False)
