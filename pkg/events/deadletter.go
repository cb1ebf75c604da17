package events

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers a dead-letter message carries besides the original ones. The
// operator's advisory-driven forwarder writes the same headers, so a DLQ
// consumer sees one format whichever path dead-lettered the event.
const (
	HeaderDLQStream     = "Dlq-Original-Stream"
	HeaderDLQConsumer   = "Dlq-Original-Consumer"
	HeaderDLQSubject    = "Dlq-Original-Subject"
	HeaderDLQSequence   = "Dlq-Original-Sequence"
	HeaderDLQMsgID      = "Dlq-Original-Msg-Id"
	HeaderDLQDeliveries = "Dlq-Deliveries"
	HeaderDLQReason     = "Dlq-Reason"
	HeaderDLQTime       = "Dlq-Time"
)

// DeadLetterPrefix is prepended to the original subject to form the default
// dead-letter subject: auth.user.created → dlq.auth.user.created.
const DeadLetterPrefix = "dlq."

// TermReasonDeadLettered starts the reason of every Term this package sends
// after it has dead-lettered a message itself. The operator, which forwards
// MSG_TERMINATED advisories to the DLQ too, skips advisories whose reason
// starts with it (and deduplication by DeadLetterMsgID covers a race).
const TermReasonDeadLettered = "events: dead-lettered"

// maxReasonLength keeps the reason header and the Term payload small.
const maxReasonLength = 512

// DeadLetterInfo describes where a dead letter came from and why.
type DeadLetterInfo struct {
	Stream     string    // stream that held the original
	Consumer   string    // consumer that gave up on it
	Subject    string    // original subject
	Sequence   uint64    // stream sequence of the original
	Deliveries uint64    // delivery attempts made
	Reason     string    // why it was dead-lettered
	Time       time.Time // when it was dead-lettered
}

// DeadLetterSubject returns the default dead-letter subject for an original
// subject.
func DeadLetterSubject(original string) string { return DeadLetterPrefix + original }

// DeadLetterMsgID is the Nats-Msg-Id of the dead letter of message seq of
// stream: the same whichever path sends it, so the DLQ stream stores it
// once.
func DeadLetterMsgID(stream string, seq uint64) string {
	return "dlq:" + stream + ":" + strconv.FormatUint(seq, 10)
}

// NewDeadLetterMsg builds the dead-letter message for subject from the
// original message's headers and body: the original headers (the ce-
// attributes included) are kept, JetStream's own Nats-* headers are dropped
// so that they cannot make the DLQ publish fail (an expected-sequence check,
// say) — the original Nats-Msg-Id is kept as Dlq-Original-Msg-Id — and the
// Dlq-* headers and the deduplicating Nats-Msg-Id are added. header is not
// modified.
func NewDeadLetterMsg(subject string, header nats.Header, body []byte, info DeadLetterInfo) *nats.Msg {
	h := make(nats.Header, len(header)+9)
	for k, vs := range header {
		if len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
			if strings.EqualFold(k, HeaderMsgID) && len(vs) > 0 {
				h[HeaderDLQMsgID] = []string{vs[0]}
			}
			continue
		}
		h[k] = append([]string(nil), vs...)
	}
	h[HeaderDLQStream] = []string{info.Stream}
	h[HeaderDLQConsumer] = []string{info.Consumer}
	h[HeaderDLQSubject] = []string{info.Subject}
	h[HeaderDLQSequence] = []string{strconv.FormatUint(info.Sequence, 10)}
	h[HeaderDLQDeliveries] = []string{strconv.FormatUint(info.Deliveries, 10)}
	h[HeaderDLQReason] = []string{headerSafe(info.Reason)}
	h[HeaderDLQTime] = []string{info.Time.UTC().Format(time.RFC3339Nano)}
	h[HeaderMsgID] = []string{DeadLetterMsgID(info.Stream, info.Sequence)}
	return &nats.Msg{Subject: subject, Header: h, Data: body}
}

// headerSafe makes a free-text value fit in a header: no control
// characters (a CR or LF would break the header block), bounded length.
func headerSafe(s string) string {
	if len(s) > maxReasonLength {
		s = s[:maxReasonLength]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
