"""Webhook rules (issue 16): how deliveries are signed and when they are retried. No IO."""
