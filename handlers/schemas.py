"""Request and response schemas: they validate input and document the API.

Input schemas refuse unknown fields (marshmallow's default ``RAISE``), so a field
such as ``is_superuser`` is a 400 naming it instead of being silently dropped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from channels.registry import CHANNEL_TYPES
from gateway.faq import MAX_PHRASING
from gateway.passwords import MIN_PASSWORD_LENGTH
from storage.models import ConversationStatus, Direction, EventType, Role, Scope, Status, TokenRole

MAX_CONTENT = 4096  # Telegram's limit for one text message


WINDOW = (
    "WhatsApp: until when free-form text reaches the contact (24 h after their last "
    "message); null on channels without such a window"
)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: not 1, "yes" or "on" (1 == True in Python sets)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class ErrorDetail(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Problems by field name, for validation errors"},
    )


class Error(Schema):
    error = fields.Nested(ErrorDetail, required=True)


# -- auth ---------------------------------------------------------------------------


class TokenRequest(Schema):
    # As long as a username or password can be, and no longer: an attacker's
    # megabyte-long username is refused here, not looked up or counted.
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=1024))


class RefreshRequest(Schema):
    refresh = fields.String(required=True, validate=validate.Length(min=1, max=2048))


class TokenPair(Schema):
    access = fields.String(required=True, metadata={"description": "Bearer token, 15 min"})
    refresh = fields.String(required=True, metadata={"description": "Use once to rotate"})


# -- agents -------------------------------------------------------------------------


USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{2,63}$"  # case-insensitive: stored lowercase


class AgentCreate(Schema):
    username = fields.String(
        required=True,
        validate=validate.Regexp(
            USERNAME_PATTERN, error="3-64 characters: letters, digits, '_', '.', '@' or '-'"
        ),
    )
    password = fields.String(
        required=True, validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024)
    )
    display_name = fields.String(validate=validate.Length(max=150), load_default="")
    role = fields.Enum(
        Role, by_value=True, metadata={"description": "agent (the default) or admin: admins only"}
    )


class AgentUpdate(Schema):
    """At least one field (documented as minProperties in handlers/docs.py)."""

    display_name = fields.String(validate=validate.Length(max=150))
    password = fields.String(validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024))
    # Required with a new password: a stolen access token must not take the account.
    current_password = fields.String(validate=validate.Length(min=1, max=1024))
    is_available = StrictBoolean()
    # An admin's, of any agent: an admin manages the others; a disabled agent's
    # sign-ins end and their conversations go back to the queue.
    role = fields.Enum(Role, by_value=True)
    disabled = StrictBoolean()


class Agent(Schema):
    id = fields.String(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    is_available = fields.Boolean(required=True)
    role = fields.Enum(Role, by_value=True, required=True)
    disabled = fields.Boolean(required=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


# -- API tokens -----------------------------------------------------------------------


def _distinct(values: list[Any]) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("each at most once")


class ApiTokenCreate(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    role = fields.Enum(
        TokenRole,
        by_value=True,
        required=True,
        metadata={"description": "bot (answers contacts first) or integration (another system)"},
    )
    scopes = fields.List(
        fields.Enum(Scope, by_value=True),
        required=True,
        validate=[validate.Length(min=1), _distinct],
        metadata={
            "description": "read: every GET and the event stream; send: messages; "
            "conversations: assign, read, resolve; admin: agents, tokens and FAQs"
        },
    )


class ApiToken(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.Enum(TokenRole, by_value=True, required=True)
    scopes = fields.Method("sorted_scopes", required=True, metadata={"type": "array"})
    hint = fields.String(
        required=True, metadata={"description": "The prefix and last characters of its secret"}
    )
    created_by = fields.String(required=True, metadata={"description": "The admin's id"})
    created_at = fields.AwareDateTime(required=True)
    last_used_at = fields.AwareDateTime(
        allow_none=True, required=True, metadata={"description": "To the minute; null: never"}
    )

    def sorted_scopes(self, token: Any) -> list[str]:
        return sorted(scope.value for scope in token.scopes)


class ApiTokenCreated(ApiToken):
    token = fields.String(
        required=True,
        metadata={"description": "The secret, shown this once: send it as Authorization: Bearer"},
    )


# -- contacts, channels, messages -----------------------------------------------------


class Contact(Schema):
    id = fields.String(required=True)
    channel_id = fields.String(required=True)
    external_id = fields.String(required=True, metadata={"description": "The provider's id"})
    name = fields.String(required=True)
    username = fields.String(required=True)
    assigned_agent_id = fields.String(
        allow_none=True, metadata={"description": "The assignee of the contact's conversation"}
    )
    last_message_at = fields.AwareDateTime(allow_none=True)
    window_expires_at = fields.AwareDateTime(allow_none=True, metadata={"description": WINDOW})
    attributes = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "What the team keeps about the contact"},
    )
    created_at = fields.AwareDateTime(required=True, metadata={"description": "First seen"})


class ContactUpdate(Schema):
    attributes = fields.Dict(
        required=True,
        keys=fields.String(
            validate=validate.Regexp(
                r"^[a-z0-9_]{1,32}$", error="an attribute's name: 1 to 32 of a-z, 0-9 or '_'"
            )
        ),
        values=fields.String(allow_none=True, validate=validate.Length(max=200)),
        metadata={"description": "Keys to set (at most 200 characters) or, with null, remove"},
    )


class Channel(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    type = fields.String(required=True, metadata={"enum": sorted(CHANNEL_TYPES)})
    mode = fields.String(required=True, metadata={"enum": ["webhook", "polling"]})
    webhook_path = fields.String(
        allow_none=True, metadata={"description": "Where the provider posts; null when polling"}
    )
    max_text_length = fields.Integer(
        required=True, metadata={"description": "The longest text a message to it may carry"}
    )
    files = fields.Nested(
        "ChannelFiles",
        allow_none=True,
        metadata={"description": "The files it sends; null: none (see POST /api/v1/messages/)"},
    )
    bot_id = fields.String(
        allow_none=True,
        metadata={"description": "The API token whose bot answers its contacts first"},
    )
    created_at = fields.AwareDateTime(required=True)


class ChannelFiles(Schema):
    max_bytes = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={"description": "The largest file of each kind it sends (image, audio, "
                  "video, document); also bounded by media.max_bytes"},
    )  # fmt: skip
    types = fields.List(
        fields.String(), allow_none=True, required=True,
        metadata={"description": "The MIME types it sends; null: any"},
    )  # fmt: skip
    max_caption_length = fields.Integer(required=True)


class ContactSummary(Schema):
    id = fields.String(required=True)
    external_id = fields.String(required=True)
    name = fields.String(required=True)


class AgentSummary(Schema):
    id = fields.String(required=True)
    username = fields.String(required=True, metadata={"description": "An API token's: its name"})
    kind = fields.String(
        required=True,
        metadata={"enum": ["agent", *TokenRole], "description": "An agent, or an API token's role"},
    )


MESSAGE_STATUSES = [s.value for s in Status]
DIRECTIONS = [d.value for d in Direction]


MEDIA_KINDS = ["photo", "image", "document", "voice", "audio", "video", "video_note",
               "sticker", "animation", "location", "contact", "other"]  # fmt: skip


class Media(Schema):
    id = fields.String(required=True, metadata={"description": "Its number in the message"})
    kind = fields.String(required=True, metadata={"enum": MEDIA_KINDS})
    mime_type = fields.String(allow_none=True)
    size = fields.Integer(allow_none=True, metadata={"description": "Bytes, when known"})
    file_name = fields.String(allow_none=True)
    caption = fields.String(allow_none=True)
    latitude = fields.Float(metadata={"description": "For a location"})
    longitude = fields.Float(metadata={"description": "For a location"})
    phone_number = fields.String(metadata={"description": "For a shared contact"})
    url = fields.String(metadata={"description": "A file an agent sent by URL: that URL"})


class Message(Schema):
    id = fields.String(required=True)
    channel_id = fields.String(required=True)
    conversation_id = fields.String(
        required=True, metadata={"description": "The contact's one conversation"}
    )
    contact = fields.Nested(ContactSummary, required=True)
    agent = fields.Nested(AgentSummary, allow_none=True, required=True)
    direction = fields.String(required=True, metadata={"enum": DIRECTIONS})
    content = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": MESSAGE_STATUSES})
    external_id = fields.String(metadata={"description": "The provider's message id"})
    error = fields.String(allow_none=True, metadata={"description": "Why sending failed"})
    template = fields.Nested(
        "TemplateSend", allow_none=True, metadata={"description": "The template it sent"}
    )
    media = fields.List(
        fields.Nested(Media),
        required=True,
        metadata={"description": "Files, a location or a contact it carried; content says it too"},
    )
    auto_reply = fields.Boolean(
        dump_default=False, metadata={"description": "Sent by the gateway from an FAQ"}
    )
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class TemplateSend(Schema):
    # https://www.twilio.com/docs/content/content-api-resources: a Content SID
    content_sid = fields.String(
        required=True,
        validate=validate.Regexp(r"HX[0-9a-f]{32}", error="a Content SID: HX and 32 hex digits"),
    )
    variables = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=32)),
        values=fields.String(validate=validate.Length(max=1024)),
        load_default=dict,
        validate=validate.Length(max=50),
        metadata={"description": 'The template\'s placeholders: {"1": "Ana"}'},
    )


class Template(Schema):
    content_sid = fields.String(required=True)
    name = fields.String(required=True)
    language = fields.String(required=True)
    variables = fields.Dict(required=True, metadata={"description": "Placeholders, with samples"})
    types = fields.List(fields.String(), required=True, metadata={"example": ["twilio/text"]})
    whatsapp_status = fields.String(
        required=True, metadata={"enum": ["approved", "pending", "rejected", "unsubmitted"]}
    )


class Templates(Schema):
    results = fields.List(fields.Nested(Template), required=True)


def _no_credentials(url: str) -> None:
    if "@" in urlsplit(url).netloc:  # they would go to the provider
        raise ValidationError("A URL without user:password@.")


class MessageCreate(Schema):
    contact_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    template = fields.Nested(
        TemplateSend,
        metadata={"description": "An approved template instead of content (WhatsApp, any time)"},
    )
    content = fields.String(
        validate=[
            validate.Length(min=1, max=MAX_CONTENT),
            validate.Predicate("strip", error="Must contain more than white space."),
        ],
        metadata={"description": "The text (a file's caption); required unless template "
                  "or media_url is given"},
    )  # fmt: skip
    media_url = fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        validate=[
            validate.Length(max=2048),
            _no_credentials,
        ],
        metadata={"description": "A file for the provider to fetch and send (http or https; "
                  "the gateway never fetches it)"},
    )  # fmt: skip
    media_type = fields.String(
        validate=validate.Regexp(r"^[a-z]+/[A-Za-z0-9.+-]{1,100}$", error="a MIME type"),
        metadata={"description": "media_url's type, when its path does not say (image/jpeg)"},
    )
    file_name = fields.String(
        validate=validate.Length(min=1, max=255),
        metadata={"description": "The name media_url's file is shown with"},
    )

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if "template" in data and data.keys() & {"content", "media_url"}:
            raise ValidationError("send a template alone, with no content or media_url", "template")
        if not data.keys() & {"content", "template", "media_url"}:
            raise ValidationError("send content, media_url or template", "content")
        if data.keys() & {"media_type", "file_name"} and "media_url" not in data:
            raise ValidationError(
                "only with media_url", next(iter(data.keys() & {"media_type", "file_name"}))
            )


class MessageUpload(Schema):
    """The text fields of a multipart send; its file is the part named ``file``."""

    contact_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    content = MessageCreate._declared_fields["content"]


# -- conversations and events --------------------------------------------------------

CONVERSATION_STATUSES = [s.value for s in ConversationStatus]


class ChannelSummary(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    type = fields.String(required=True)


class Preview(Schema):
    id = fields.String(required=True)
    direction = fields.String(required=True, metadata={"enum": DIRECTIONS})
    content = fields.String(required=True, metadata={"description": "At most 200 characters"})
    status = fields.String(required=True, metadata={"enum": MESSAGE_STATUSES})
    agent_id = fields.String(allow_none=True, metadata={"description": "Who sent it (outbound)"})
    auto_reply = fields.Boolean(metadata={"description": "Sent by the gateway from an FAQ"})


class Conversation(Schema):
    id = fields.String(required=True)
    contact = fields.Nested(ContactSummary, required=True)
    channel = fields.Nested(ChannelSummary, required=True)
    assignee_id = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, metadata={"enum": CONVERSATION_STATUSES})
    unread = fields.Method(
        "_unread",
        required=True,
        metadata={
            "type": "integer",
            "description": "Inbound messages you have not read. In events (shared by every "
            "reader): its assignee's, or, in the queue, those nobody has read",
        },
    )
    inbound_count = fields.Integer(
        required=True, metadata={"description": "Inbound messages it has had, ever"}
    )
    read_by = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={
            "description": "Who read it (an agent's or an API token's id) and its "
            "inbound_count then: a reader's unread is inbound_count minus their mark"
        },
    )
    last_message = fields.Nested(Preview, allow_none=True, required=True)
    last_message_at = fields.AwareDateTime(allow_none=True, required=True)
    window_expires_at = fields.Method(
        "_window",
        allow_none=True,
        metadata={"type": "string", "format": "date-time", "description": WINDOW},
    )
    handoff_reason = fields.String(
        allow_none=True,
        metadata={"description": "Why its bot gave it to the agents, the last time"},
    )
    labels = fields.List(fields.String(), required=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)

    def _unread(self, conversation: Any) -> int:
        return int(conversation.unread_for(conversation.assignee_id))

    def _window(self, conversation: Any) -> str | None:
        channel_type = CHANNEL_TYPES.get(conversation.channel.type)
        window = channel_type.reply_window if channel_type is not None else None
        if window is None:
            return None
        opened = conversation.last_inbound_at or conversation.created_at
        return str((opened + window).isoformat())


class Handoff(Schema):
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=500),
        metadata={"description": "Shown to the agents: what the contact needs"},
    )


class ChannelUpdate(Schema):
    bot_id = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "An API token of role bot; null: no bot"},
    )


LABEL = fields.String(
    validate=validate.Regexp(
        r"^\s*\w[\w \-]{0,31}\s*$",
        error="a label: 1 to 32 letters, digits, spaces, '-' or '_', a letter or digit first",
    )
)


class ConversationUpdate(Schema):
    """At least one field (documented as minProperties in handlers/docs.py)."""

    assignee_id = fields.String(
        allow_none=True, metadata={"description": "Transfer to this agent; null: the queue"}
    )
    status = fields.String(validate=validate.OneOf(CONVERSATION_STATUSES))
    labels = fields.List(
        LABEL,
        validate=validate.Length(max=10),
        metadata={"description": "All its labels from now on (kept in lower case); [] for none"},
    )


class LabelCount(Schema):
    name = fields.String(required=True)
    conversations = fields.Integer(required=True)
    open = fields.Integer(required=True, metadata={"description": "Of them, open now"})


class Counts(Schema):
    mine = fields.Integer(required=True, metadata={"description": "Yours, open"})
    unassigned = fields.Integer(required=True, metadata={"description": "Open, in the queue"})
    pending = fields.Integer(required=True, metadata={"description": "Waiting on the contact"})
    bot = fields.Integer(required=True, metadata={"description": "Held by a channel's bot"})


class Labels(Schema):
    results = fields.List(fields.Nested(LabelCount), required=True)


class NoteCreate(Schema):
    content = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_CONTENT),
        metadata={"description": "Name a colleague as @username to tell them"},
    )


class Note(Schema):
    id = fields.String(required=True)
    conversation_id = fields.String(required=True)
    agent = fields.Nested(AgentSummary, required=True, metadata={"description": "Who wrote it"})
    content = fields.String(required=True)
    mentions = fields.List(
        fields.String(), required=True, metadata={"description": "The agents it names, by id"}
    )
    created_at = fields.AwareDateTime(required=True)


class Event(Schema):
    """One entry of the event stream (its `data:` line); `id:` and `event:` repeat
    the id and the type."""

    id = fields.String(required=True, metadata={"description": "Resume after it: Last-Event-ID"})
    type = fields.String(
        required=True,
        metadata={"enum": [t.value for t in EventType]},
    )
    conversation_id = fields.String(
        required=True, metadata={"description": "Empty for subscription.disabled"}
    )
    message = fields.Nested(Message, metadata={"description": "For message.* events"})
    conversation = fields.Nested(Conversation, metadata={"description": "For conversation.updated"})
    subscription = fields.Nested(
        "Subscription", metadata={"description": "For subscription.disabled: why, in it"}
    )
    note = fields.Nested(Note, metadata={"description": "For note.created"})


class Ticket(Schema):
    ticket = fields.String(
        required=True, metadata={"description": "Pass as ?ticket= to /api/v1/events/ once"}
    )
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds"})


# -- lists --------------------------------------------------------------------------


class PageQuery(Schema):
    page_size = fields.Integer(
        load_default=20, validate=validate.Range(min=1, max=100), metadata={"example": 20}
    )
    cursor = fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_.-]+$"),
        metadata={"description": "The `next` link's cursor; opaque"},
    )


class ContactQuery(PageQuery):
    channel_id = fields.String()
    q = fields.String(
        validate=validate.Length(min=1, max=100), metadata={"description": "In name or username"}
    )


class MessageQuery(PageQuery):
    contact_id = fields.String()
    conversation_id = fields.String()
    agent_id = fields.String(metadata={"description": "Sent by this agent (me: by you)"})
    assignee_id = fields.String(
        metadata={
            "description": "In the conversations assigned to this agent (me: to you), "
            "sent by anyone"
        }
    )
    direction = fields.String(validate=validate.OneOf(DIRECTIONS))
    status = fields.String(validate=validate.OneOf(MESSAGE_STATUSES))
    created_after = fields.AwareDateTime(metadata={"description": "ISO 8601 with a zone"})
    created_before = fields.AwareDateTime(metadata={"description": "ISO 8601 with a zone"})


class ConversationQuery(PageQuery):
    assignee = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "me, none (the queue) or an agent's id"},
    )
    status = fields.String(validate=validate.OneOf(CONVERSATION_STATUSES))
    channel_id = fields.String()
    label = fields.String(validate=validate.Length(min=1, max=32))
    q = fields.String(
        validate=[
            validate.Length(min=1, max=100),
            validate.Regexp(r".*\w", error="q needs a letter or a digit"),
        ],
        metadata={
            "description": "Contacts with, for each word of q, a word of their name, "
            "username or provider id that starts with it, in any case: `ana 55` finds "
            "Ana at +5511…"
        },
    )


class EventQuery(Schema):
    assignee = fields.String(
        validate=validate.Equal("me"), metadata={"description": "me: my conversations only"}
    )
    conversation_id = fields.String()
    ticket = fields.String(
        validate=validate.Length(max=2048),
        metadata={"description": "From POST /api/v1/events/ticket/, instead of the header"},
    )
    last_event_id = fields.String(
        validate=validate.Length(max=64),
        metadata={"description": "As the Last-Event-ID header, for clients that cannot send it"},
    )


def page_of(item: type[Schema]) -> type[Schema]:
    """The schema of a paginated list of ``item``."""
    return Schema.from_dict(
        {
            "results": fields.List(fields.Nested(item), required=True),
            "next": fields.Url(
                allow_none=True, required=True, metadata={"description": "Next page, or null"}
            ),
        },
        name=f"{item.__name__}Page",
    )


# -- Saved replies ----------------------------------------------------------------------

SHORTCUT = validate.Regexp(
    r"^[a-z0-9_-]{1,32}$", error="shortcut: 1 to 32 of a-z, 0-9, '_' or '-' (typed after /)"
)
REPLY_TEXT = (
    "{{contact.name}}, {{contact.external_id}}, {{agent.name}} and {{channel.name}} "
    "are filled in where it is inserted"
)


class SavedReplyCreate(Schema):
    shortcut = fields.String(required=True, validate=SHORTCUT)
    text = fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_CONTENT),
        metadata={"description": REPLY_TEXT},
    )


class SavedReplyUpdate(Schema):
    shortcut = fields.String(validate=SHORTCUT)
    text = fields.String(
        validate=validate.Length(min=1, max=MAX_CONTENT), metadata={"description": REPLY_TEXT}
    )


class SavedReply(Schema):
    id = fields.String(required=True)
    shortcut = fields.String(required=True)
    text = fields.String(required=True, metadata={"description": REPLY_TEXT})
    created_by = fields.String(required=True, metadata={"description": "Its author's agent id"})
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class SavedReplyQuery(PageQuery):
    prefix = fields.String(
        validate=validate.Length(max=32),
        metadata={"description": "Those whose shortcut starts with it (as typed after /)"},
    )


# -- FAQs -----------------------------------------------------------------------------


class FaqCreate(Schema):
    question = fields.String(required=True, validate=validate.Length(min=1, max=MAX_PHRASING))
    alternatives = fields.List(
        fields.String(validate=validate.Length(min=1, max=MAX_PHRASING)),
        validate=validate.Length(max=20),
        load_default=list,
        metadata={"description": "Other phrasings of the same question"},
    )
    answer = fields.String(required=True, validate=validate.Length(min=1, max=MAX_CONTENT))
    enabled = StrictBoolean(load_default=True)


class FaqUpdate(Schema):
    """At least one field (documented as minProperties in handlers/docs.py)."""

    question = fields.String(validate=validate.Length(min=1, max=MAX_PHRASING))
    alternatives = fields.List(
        fields.String(validate=validate.Length(min=1, max=MAX_PHRASING)),
        validate=validate.Length(max=20),
    )
    answer = fields.String(validate=validate.Length(min=1, max=MAX_CONTENT))
    enabled = StrictBoolean()


class Faq(Schema):
    id = fields.String(required=True)
    question = fields.String(required=True)
    alternatives = fields.List(fields.String(), required=True)
    answer = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    hits = fields.Integer(required=True, metadata={"description": "Auto-replies sent"})
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class Suggestion(Schema):
    question = fields.String(required=True, metadata={"description": "Normalised text"})
    example = fields.String(required=True, metadata={"description": "One way it was asked"})
    count = fields.Integer(required=True, metadata={"description": "Messages asking it"})
    contacts = fields.Integer(required=True, metadata={"description": "Contacts asking it"})


class SuggestionQuery(Schema):
    days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=365))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class Suggestions(Schema):
    results = fields.List(fields.Nested(Suggestion), required=True)


# -- subscriptions (outbound webhooks) ------------------------------------------------

EVENT_TYPES_HELP = "The event types it gets: " + ", ".join(t.value for t in EventType)


class SubscriptionCreate(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "http(s); private addresses only where allowed"},
    )
    events = fields.List(
        fields.Enum(EventType, by_value=True),
        required=True,
        validate=[validate.Length(min=1), _distinct],
        metadata={"description": EVENT_TYPES_HELP},
    )
    description = fields.String(validate=validate.Length(max=500), load_default="")
    bot_id = fields.String(
        allow_none=True,
        load_default=None,
        metadata={
            "description": "The bot (an API token of role bot) it feeds: while it fails, "
            "the bot's conversations go to the agents (bots.failing_subscription_seconds)"
        },
    )


class SubscriptionUpdate(Schema):
    """At least one field (documented as minProperties in handlers/docs.py)."""

    url = fields.String(validate=validate.Length(min=1, max=2000))
    events = fields.List(
        fields.Enum(EventType, by_value=True), validate=[validate.Length(min=1), _distinct]
    )
    description = fields.String(validate=validate.Length(max=500))
    paused = StrictBoolean(
        metadata={"description": "false resumes it, a disabled one too, from where it stopped"}
    )


class Subscription(Schema):
    id = fields.String(required=True)
    url = fields.String(required=True)
    events = fields.Method("sorted_events", required=True, metadata={"type": "array"})
    description = fields.String(required=True)
    paused = fields.Boolean(required=True)
    disabled_reason = fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "Why it was disabled: it failed for the log's whole retention"},
    )
    failing_since = fields.AwareDateTime(
        allow_none=True, required=True, metadata={"description": "The first failure since a 2xx"}
    )
    last_error = fields.String(allow_none=True, required=True)
    bot_id = fields.String(allow_none=True, required=True)
    last_event_id = fields.String(
        attribute="cursor",
        required=True,
        metadata={"description": "The last event delivered (or not wanted)"},
    )
    created_by = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)

    def sorted_events(self, subscription: Any) -> list[str]:
        return sorted(event.value for event in subscription.events)


class SubscriptionCreated(Subscription):
    secret = fields.String(
        required=True,
        metadata={"description": "whsec_…: verifies the webhook-signature; shown this once"},
    )


class Delivery(Schema):
    id = fields.String(required=True)
    event_id = fields.String(required=True, metadata={"description": "Also its webhook-id"})
    event_type = fields.String(required=True)
    attempt = fields.Integer(required=True, metadata={"description": "1 for the first try"})
    status = fields.Integer(
        allow_none=True, required=True, metadata={"description": "The receiver's; null: none"}
    )
    error = fields.String(allow_none=True, required=True)
    duration_ms = fields.Integer(required=True)
    created_at = fields.AwareDateTime(required=True)


class Replay(Schema):
    after = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "An event id: every wanted event after it is sent again"},
    )
