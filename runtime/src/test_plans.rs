//! Plans the runtime's own tests build by hand: the runtime reads plans, never `.cairn`
//! source, so its tests cannot compile a project.

use cairn_plan::Plan;
use cairn_plan::schema::{Event, Field, Type, builtin_events};

/// A plan named `name` with the built-in events and one of its own, `signup` (sent as
/// `Signed Up`, with a `form` string). Not sealed: callers add to it, then seal.
pub fn with_signup(name: &str) -> Plan {
    let mut plan = Plan::new(name);
    for event in builtin_events() {
        plan.schema.events.insert(event.name.clone(), event);
    }
    plan.schema.events.insert(
        "signup".into(),
        Event {
            name: "signup".into(),
            wire_name: Some("Signed Up".into()),
            fields: vec![Field {
                name: "form".into(),
                ty: Type::scalar("string"),
                optional: false,
                default: None,
            }],
            builtin: false,
        },
    );
    plan
}
