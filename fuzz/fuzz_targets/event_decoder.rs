//! Any bytes, read as an event record: decoding must return, never panic, and every object
//! that decodes is evaluated against a fixed rule set whose rules use most modifiers, so the
//! event walker and the matchers see hostile values too. The direct decoder (JSON text
//! straight into rule values) is checked against the JSON tree on every input.

#![no_main]

use std::sync::OnceLock;

use foundry_engine::{EventOrigin, RuleSet, RuleSetBuilder, RuleSource, SourceKind, SourceMeta};
use libfuzzer_sys::fuzz_target;

const RULES: &str = r#"
title: Strings and encodings
id: fuzz-strings
logsource:
    product: windows
detection:
    sel_str:
        CommandLine|contains|all:
            - ' -enc '
            - 'Invoke-*'
        Image|endswith: '\power?hell.exe'
        ParentImage|startswith|cased: 'C:\Windows\'
    sel_dash:
        CommandLine|windash|contains: ' -nop '
    sel_re:
        CommandLine|re|i: '^(?:cmd|pwsh)\s+/c\s+\w{2,8}'
    sel_b64:
        CommandLine|base64offset|contains: 'IEX ('
    sel_wide:
        Payload|wide|base64: 'http'
    keywords:
        - 'mimikatz'
        - '*sekurlsa::*'
    condition: 1 of sel_* or keywords
---
title: Numbers, networks, times and references
id: fuzz-values
logsource:
    category: process_creation
detection:
    sel_num:
        EventID: 4688
        Count|gte: 10
        Size|lt: 1.5e3
    sel_net:
        DestinationIp|cidr:
            - 10.0.0.0/8
            - fd00::/8
    sel_misc:
        User|exists: true
        Missing: null
        Other|neq: 'x'
        Target|fieldref|contains: User
        TimeCreated|hour: 3
        Event.System.TimeCreated|year|gte: 2020
    filter:
        a.b.c|re: '(?s)x.*y'
    condition: (sel_num or sel_net or sel_misc) and not filter
---
title: Everything everywhere
id: fuzz-all
logsource:
    product: linux
detection:
    sel:
        - '*'
    other:
        '|contains': 'needle'
    condition: all of them
"#;

fn rules() -> &'static RuleSet {
    static RULES_SET: OnceLock<RuleSet> = OnceLock::new();
    RULES_SET.get_or_init(|| {
        let mut builder = RuleSetBuilder::new().strict(true);
        builder.add_source(RuleSource {
            path: "fuzz.yml".into(),
            text: RULES.into(),
            kind: SourceKind::Sigma,
            meta: SourceMeta::default(),
        });
        let (set, _) = builder.build().expect("the fuzz rule set compiles");
        set
    })
}

fn rule_ids(hits: &[foundry_engine::Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.rule.id.as_str()).collect()
}

fuzz_target!(|data: &[u8]| {
    let set = rules();
    let origin = EventOrigin::default();
    // Two decoders: the JSON tree, and the direct one the worker and `scan` use for JSON
    // Lines. They must agree on every record: the same error, or the same hits.
    let tree = foundry_engine::decode_event(data, 1 << 20);
    let direct = set.evaluate_bytes(data, 1 << 20, &origin, None);
    match (&tree, &direct) {
        (Ok(event), Ok(evaluation)) => {
            let from_tree = set.evaluate(event, &origin, None);
            assert_eq!(rule_ids(&from_tree.hits), rule_ids(&evaluation.hits));
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("decoders disagree: tree {tree:?}, direct {direct:?}"),
    }
    for record in foundry_engine::input::json_documents(data) {
        if let Ok(event) = record.event {
            let _ = set.evaluate(&event, &origin, None);
        }
    }
});
