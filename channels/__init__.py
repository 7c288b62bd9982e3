"""Messaging channels (Telegram, WhatsApp through Twilio, Mock) behind one interface."""
