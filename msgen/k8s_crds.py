"""The known shape of the Traefik CRDs msgen writes (traefik.io/v1alpha1 IngressRoute and
Middleware), as strict JSON schemas compiled once with jsonschema-rs.

Written from Traefik v3's CRD reference (doc.traefik.io/traefik/reference/routing-configuration/
kubernetes/crd/): only the fields of the middlewares msgen uses are spelled out, so a typo
in those is caught; other middleware kinds are accepted as objects.
"""

from __future__ import annotations

from functools import cache

from msgen.k8s_schemas import Problem, field_path

_STRING = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_INT_OR_STRING = {"type": ["integer", "string"]}
_STRINGS = {"type": "array", "items": _STRING}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}


def _strict(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_METADATA = {
    "type": "object",
    "properties": {"name": _STRING, "namespace": _STRING, "labels": _STRING_MAP, "annotations": _STRING_MAP},
    "required": ["name"],
    "additionalProperties": False,
}
_REFERENCE = _strict({"name": _STRING, "namespace": _STRING}, ("name",))
_SERVICE = _strict(
    {
        "name": _STRING,
        "namespace": _STRING,
        "kind": {"enum": ["Service", "TraefikService"]},
        "port": _INT_OR_STRING,
        "scheme": _STRING,
        "strategy": _STRING,
        "weight": _INT,
        "passHostHeader": _BOOL,
        "serversTransport": _STRING,
        "nativeLB": _BOOL,
        "nodePortLB": _BOOL,
        "responseForwarding": {"type": "object"},
        "sticky": {"type": "object"},
        "healthCheck": {"type": "object"},
    },
    ("name",),
)
_ROUTE = _strict(
    {
        "match": _STRING,
        "kind": {"enum": ["Rule"]},
        "priority": _INT,
        "syntax": _STRING,
        "middlewares": {"type": "array", "items": _REFERENCE},
        "services": {"type": "array", "items": _SERVICE},
        "observability": {"type": "object"},
    },
    ("match",),
)
_TLS = _strict(
    {
        "secretName": _STRING,
        "options": _REFERENCE,
        "store": _REFERENCE,
        "certResolver": _STRING,
        "domains": {"type": "array", "items": _strict({"main": _STRING, "sans": _STRINGS})},
    }
)
INGRESS_ROUTE = _strict(
    {
        "apiVersion": {"const": "traefik.io/v1alpha1"},
        "kind": {"const": "IngressRoute"},
        "metadata": _METADATA,
        "spec": _strict({"entryPoints": _STRINGS, "routes": {"type": "array", "items": _ROUTE, "minItems": 1}, "tls": _TLS}, ("routes",)),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

_MIDDLEWARES = {
    "rateLimit": _strict(
        {
            "average": _INT_OR_STRING,
            "period": _INT_OR_STRING,
            "burst": _INT,
            "sourceCriterion": _strict(
                {
                    "ipStrategy": _strict({"depth": _INT, "excludedIPs": _STRINGS, "ipv6Subnet": _INT}),
                    "requestHeaderName": _STRING,
                    "requestHost": _BOOL,
                }
            ),
            "redis": {"type": "object"},
        }
    ),
    "circuitBreaker": _strict(
        {
            "expression": _STRING,
            "checkPeriod": _INT_OR_STRING,
            "fallbackDuration": _INT_OR_STRING,
            "recoveryDuration": _INT_OR_STRING,
            "responseCode": _INT,
        }
    ),
    "retry": _strict(
        {
            "attempts": _INT,
            "initialInterval": _INT_OR_STRING,
            "status": _STRINGS,
            "timeout": _INT_OR_STRING,
            "retryNonIdempotentMethod": _BOOL,
            "disableRetryOnNetworkError": _BOOL,
            "maxRequestBodyBytes": _INT,
        }
    ),
    "headers": _strict(
        {
            **{name: _STRING_MAP for name in ("customRequestHeaders", "customResponseHeaders", "sslProxyHeaders")},
            **{
                name: _STRINGS
                for name in (
                    "accessControlAllowHeaders",
                    "accessControlAllowMethods",
                    "accessControlAllowOriginList",
                    "accessControlAllowOriginListRegex",
                    "accessControlExposeHeaders",
                    "allowedHosts",
                    "hostsProxyHeaders",
                )
            },
            **{
                name: _BOOL
                for name in (
                    "accessControlAllowCredentials",
                    "addVaryHeader",
                    "browserXssFilter",
                    "contentTypeNosniff",
                    "forceSTSHeader",
                    "frameDeny",
                    "isDevelopment",
                    "stsIncludeSubdomains",
                    "stsPreload",
                )
            },
            **{
                name: _STRING
                for name in (
                    "contentSecurityPolicy",
                    "contentSecurityPolicyReportOnly",
                    "customBrowserXSSValue",
                    "customFrameOptionsValue",
                    "featurePolicy",
                    "permissionsPolicy",
                    "publicKey",
                    "referrerPolicy",
                )
            },
            "accessControlMaxAge": _INT,
            "stsSeconds": _INT,
        }
    ),
    "basicAuth": _strict({"secret": _STRING, "realm": _STRING, "removeHeader": _BOOL, "headerField": _STRING}),
}
# the other kinds Traefik's Middleware CRD knows, checked only as objects
_OTHER_MIDDLEWARES = (
    "addPrefix",
    "buffering",
    "chain",
    "compress",
    "contentType",
    "digestAuth",
    "errors",
    "forwardAuth",
    "grpcWeb",
    "inFlightReq",
    "ipAllowList",
    "passTLSClientCert",
    "plugin",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "stripPrefix",
    "stripPrefixRegex",
)
MIDDLEWARE = _strict(
    {
        "apiVersion": {"const": "traefik.io/v1alpha1"},
        "kind": {"const": "Middleware"},
        "metadata": _METADATA,
        "spec": {
            **_strict({**_MIDDLEWARES, **{name: {"type": "object"} for name in _OTHER_MIDDLEWARES}}),
            "minProperties": 1,
            "maxProperties": 1,
        },
    },
    ("apiVersion", "kind", "metadata", "spec"),
)
SHAPES = {"IngressRoute": INGRESS_ROUTE, "Middleware": MIDDLEWARE}


@cache
def _validator(kind: str):
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(SHAPES[kind])


def crd_problems(document: dict) -> list[Problem]:
    """Every way a Traefik CRD object departs from the known shape."""
    kind = document.get("kind")
    if kind not in SHAPES:
        return [Problem("kind", f"msgen writes no Traefik {kind!r} objects; known: {', '.join(sorted(SHAPES))}")]
    errors = _validator(kind).iter_errors(document)
    return sorted((Problem(field_path(error.instance_path), error.message) for error in errors), key=lambda p: (p.field, p.message))
