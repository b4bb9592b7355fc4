"""The blueprint of the Traefik-on-Kubernetes tests: three nodes, and a gateway routing three
services on two hosts (api and admin share one), with a fourth service left unrouted."""

from __future__ import annotations

CLUSTER = """\
version: 1
project: shop
regions:
  home: {jurisdiction: DE}
hosts:
  - {name: n1, region: home, vcpu: 4, memory: 8Gi, storage: ssd}
  - {name: n2, region: home, vcpu: 4, memory: 8Gi, storage: ssd}
  - {name: n3, region: home, vcpu: 4, memory: 8Gi, storage: ssd}
gateway: {domain: shop.example.com, http3: true, dashboard: DASHBOARD ACME}
services:
  web: {image: example/web:1.0.0, port: 8080, route: {path_prefix: /}}
  api: {image: example/api:1.0.0, port: 9000, route: {host: api.example.com}}
  admin: {image: example/admin:1.0.0, port: 9100, route: {host: api.example.com, path_prefix: /admin}}
  worker: {image: example/worker:1.0.0, port: 7000}
kubernetes: {namespace: shop-prod, version: "VERSION", ingress: INGRESS, anti_affinity: SPREAD}
"""


def cluster_blueprint(
    ingress: str = "host_ports", acme: bool = True, dashboard: bool = True, version: str = "1.30", anti_affinity: str = "required"
) -> str:
    text = CLUSTER.replace("INGRESS", ingress).replace("VERSION", version).replace("SPREAD", anti_affinity)
    text = text.replace("DASHBOARD", "true" if dashboard else "false")
    return text.replace(" ACME", ", acme_email: ops@example.com" if acme else "")
