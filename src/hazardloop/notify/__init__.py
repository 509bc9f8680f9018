"""Outgoing notifications: channels (contact points), policies (who gets what), and an outbox with retries.

Public entry points: outbox.route / outbox.dispatch, bridge.pull_hazard_notifications,
flows.start_scheduler (the job to wire into the app lifespan).
"""
