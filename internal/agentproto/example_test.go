package agentproto_test

import (
	"fmt"

	"github.com/google/uuid"

	"github.com/kubedoio/n-kudo/internal/agentproto"
)

// A receiver decodes the envelope, then the body, and closes the channel
// with the status CloseFor picks when either fails.
func Example() {
	planID := uuid.MustParse("01932f6e-0000-7000-8000-00000000000a")
	frame, err := agentproto.Encode(agentproto.TypePlanAck, "", 5, 2, agentproto.PlanAck{PlanID: planID})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(frame))

	env, err := agentproto.Decode(frame)
	if err != nil {
		code, reason := agentproto.CloseFor(err)
		fmt.Println("close", code, reason)
		return
	}
	msg, err := agentproto.DecodeMessage(env)
	if err != nil {
		code, reason := agentproto.CloseFor(err)
		fmt.Println("close", code, reason)
		return
	}
	switch m := msg.(type) {
	case agentproto.PlanAck:
		fmt.Println("agent holds plan", m.PlanID, "seq", env.Seq, "acks", env.Ack)
	default:
		fmt.Println("unexpected", env.Type)
	}

	_, err = agentproto.Decode([]byte(`{"type":"teleport","data":{}}`))
	code, reason := agentproto.CloseFor(err)
	fmt.Println("close", int(code), reason)
	// Output:
	// {"type":"plan_ack","seq":5,"ack":2,"data":{"plan_id":"01932f6e-0000-7000-8000-00000000000a"}}
	// agent holds plan 01932f6e-0000-7000-8000-00000000000a seq 5 acks 2
	// close 1003 unknown message type
}
