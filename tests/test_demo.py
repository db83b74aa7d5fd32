"""The demo a newcomer sees: segments with members and a sync that reaches the HubSpot sandbox."""

import time

from connector.demo import DEMO_SLUG, seed_demo
from connector.testing.hubspot_sandbox import HubSpotSandbox


def test_demo_seeds_segments_and_syncs_to_the_sandbox(app, database, settings, tmp_path):
    with HubSpotSandbox(port=0) as sandbox:
        token = seed_demo(
            database, settings, sandbox_url=sandbox.url, echo=lambda _: None, token_file=tmp_path / "token"
        )
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}

        segments = client.get(f"/api/v1/workspaces/{DEMO_SLUG}/segments", headers=headers).json["data"]
        counts = {s["name"]: s["member_count"] for s in segments}
        assert set(counts) >= {"Premium intent", "Paying customers", "Beta testers", "Large accounts"}
        assert all(count > 0 for count in counts.values()), counts

        sync = client.get(f"/api/v1/workspaces/{DEMO_SLUG}/syncs", headers=headers).json["data"][0]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = client.get(f"/api/v1/workspaces/{DEMO_SLUG}/syncs/{sync['id']}/runs", headers=headers).json
            if runs["data"] and runs["data"][0]["status"] != "running":
                break
            time.sleep(0.2)
        run = runs["data"][0]
        assert run["status"] == "succeeded", run
        contacts = sandbox.records("contacts")
        assert len(contacts) == run["counts"]["added"] > 0
        assert all(c["properties"]["connector_segments"] for c in contacts)
        assert (tmp_path / "token").read_text().strip() == token
