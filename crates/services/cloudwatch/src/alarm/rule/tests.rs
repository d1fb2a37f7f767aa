use super::*;

fn parse(text: &str) -> AlarmRule {
    match AlarmRule::parse(text) {
        Ok(rule) => rule,
        Err(error) => panic!("{text:?} should parse: {error}"),
    }
}

fn error(text: &str) -> String {
    match AlarmRule::parse(text) {
        Ok(rule) => panic!("{text:?} should not parse, got {rule:?}"),
        Err(error) => error.message().to_string(),
    }
}

fn state_is(state: AlarmState, alarm: &str) -> RuleExpr {
    RuleExpr::StateIs {
        state,
        alarm: alarm.to_string(),
    }
}

fn and(left: RuleExpr, right: RuleExpr) -> RuleExpr {
    RuleExpr::And(Box::new(left), Box::new(right))
}

fn or(left: RuleExpr, right: RuleExpr) -> RuleExpr {
    RuleExpr::Or(Box::new(left), Box::new(right))
}

fn not(inner: RuleExpr) -> RuleExpr {
    RuleExpr::Not(Box::new(inner))
}

#[test]
fn the_documented_examples_parse() {
    // The three examples of the API reference and the user guide.
    assert_eq!(
        parse("ALARM(CPUUtilizationTooHigh) AND ALARM(DiskReadOpsTooHigh)").expr(),
        &and(
            state_is(AlarmState::Alarm, "CPUUtilizationTooHigh"),
            state_is(AlarmState::Alarm, "DiskReadOpsTooHigh")
        )
    );
    assert_eq!(
        parse("ALARM(CPUUtilizationTooHigh) AND NOT ALARM(DeploymentInProgress)").expr(),
        &and(
            state_is(AlarmState::Alarm, "CPUUtilizationTooHigh"),
            not(state_is(AlarmState::Alarm, "DeploymentInProgress"))
        )
    );
    let rule = parse(
        "(ALARM(CPUUtilizationTooHigh) OR ALARM(DiskReadOpsTooHigh)) AND OK(NetworkOutTooHigh)",
    );
    assert_eq!(
        rule.expr(),
        &and(
            or(
                state_is(AlarmState::Alarm, "CPUUtilizationTooHigh"),
                state_is(AlarmState::Alarm, "DiskReadOpsTooHigh")
            ),
            state_is(AlarmState::Ok, "NetworkOutTooHigh")
        )
    );
    assert_eq!(
        rule.alarms(),
        [
            "CPUUtilizationTooHigh",
            "DiskReadOpsTooHigh",
            "NetworkOutTooHigh"
        ]
    );
    // The console's multi-line form, quoted.
    assert_eq!(
        parse("(ALARM(\"CPUUtilizationTooHigh\") OR \nALARM(\"DiskReadOpsTooHigh\")) AND \nOK(\"NetworkOutTooHigh\")").expr(),
        rule.expr()
    );
}

#[test]
fn names_arns_and_quoting() {
    let arn = "arn:aws:cloudwatch:us-east-2:672774589314:alarm:-Task-ImageQueueScalingAlarm846F1F23-19LPTQIB9ANUQ";
    assert_eq!(
        parse(&format!("ALARM({arn})")).expr(),
        &state_is(AlarmState::Alarm, arn)
    );
    assert_eq!(
        parse(&format!("ALARM(\"{arn}\")")).expr(),
        &state_is(AlarmState::Alarm, arn)
    );
    // Quotes allow spaces and parentheses in a name.
    assert_eq!(
        parse("INSUFFICIENT_DATA(\"SampleQueue Oldest Age (p99) Alarm\")").expr(),
        &state_is(
            AlarmState::InsufficientData,
            "SampleQueue Oldest Age (p99) Alarm"
        )
    );
    // Escapes inside quotes.
    assert_eq!(
        parse(r#"OK("say \"hi\" \\ now")"#).expr(),
        &state_is(AlarmState::Ok, r#"say "hi" \ now"#)
    );
    // A bare name may look like a keyword: inside the parentheses it is a name.
    assert_eq!(
        parse("ALARM(AND) OR OK(TRUE)").expr(),
        &or(
            state_is(AlarmState::Alarm, "AND"),
            state_is(AlarmState::Ok, "TRUE")
        )
    );
    // Whitespace around everything, and none at all.
    assert_eq!(
        parse("  ALARM ( a )\tAND\r\nOK(b)  ").expr(),
        &and(
            state_is(AlarmState::Alarm, "a"),
            state_is(AlarmState::Ok, "b")
        )
    );
    assert_eq!(
        parse("(ALARM(a))AND(OK(b))").expr(),
        &and(
            state_is(AlarmState::Alarm, "a"),
            state_is(AlarmState::Ok, "b")
        )
    );
}

#[test]
fn constants_keywords_and_precedence() {
    assert_eq!(parse("TRUE").expr(), &RuleExpr::Constant(true));
    assert_eq!(parse("FALSE").expr(), &RuleExpr::Constant(false));
    assert_eq!(parse("False").expr(), &RuleExpr::Constant(false));
    assert_eq!(
        parse("alarm(a) and not ok(b)").expr(),
        &and(
            state_is(AlarmState::Alarm, "a"),
            not(state_is(AlarmState::Ok, "b"))
        )
    );
    // AND binds tighter than OR, NOT tighter than both; chains are left-assoc.
    assert_eq!(
        parse("ALARM(a) OR ALARM(b) AND ALARM(c)").expr(),
        &or(
            state_is(AlarmState::Alarm, "a"),
            and(
                state_is(AlarmState::Alarm, "b"),
                state_is(AlarmState::Alarm, "c")
            )
        )
    );
    assert_eq!(
        parse("NOT ALARM(a) AND ALARM(b)").expr(),
        &and(
            not(state_is(AlarmState::Alarm, "a")),
            state_is(AlarmState::Alarm, "b")
        )
    );
    assert_eq!(
        parse("ALARM(a) OR ALARM(b) OR ALARM(c)").expr(),
        &or(
            or(
                state_is(AlarmState::Alarm, "a"),
                state_is(AlarmState::Alarm, "b")
            ),
            state_is(AlarmState::Alarm, "c")
        )
    );
    // NOT runs collapse: two cancel, three are one.
    assert_eq!(parse("NOT NOT TRUE").expr(), &RuleExpr::Constant(true));
    assert_eq!(
        parse("NOT NOT NOT TRUE").expr(),
        &not(RuleExpr::Constant(true))
    );
    assert_eq!(
        parse("NOT (ALARM(a) OR OK(a))").expr(),
        &not(or(
            state_is(AlarmState::Alarm, "a"),
            state_is(AlarmState::Ok, "a")
        ))
    );
}

#[test]
fn alarms_are_listed_once_in_order() {
    let rule = parse("ALARM(b) OR OK(a) OR INSUFFICIENT_DATA(b) OR ALARM(\"a\") OR ALARM(c)");
    assert_eq!(rule.alarms(), ["b", "a", "c"]);
    assert!(parse("TRUE AND NOT FALSE").alarms().is_empty());
}

#[test]
fn aws_syntax_errors() {
    // Seen from AWS: an empty group (CDK's anyOf() of nothing).
    assert_eq!(
        error("()"),
        "Error in AlarmRule [Unsupported token ')' at char 1]"
    );
    // Seen from AWS: an unquoted name with spaces; the position is the
    // 0-based offset of "Oldest" (CDK wrote the ARN bare, in parentheses).
    assert_eq!(
        error("(ALARM(arn:aws:cloudwatch:us-east-1:123456789012:alarm:SampleQueue Oldest Age Alarm) OR ALARM(arn:aws:cloudwatch:us-east-1:123456789012:alarm:SampleQueue Visible Messages Alarm))"),
        "Error in AlarmRule [Unsupported token 'Oldest' at char 67, must be: ')']"
    );
}

#[test]
fn other_syntax_errors_name_the_token_and_its_position() {
    assert_eq!(
        error("ALARM(a) ALARM(b)"),
        "Error in AlarmRule [Unsupported token 'ALARM' at char 9]"
    );
    assert_eq!(
        error("ALARM a"),
        "Error in AlarmRule [Unsupported token 'a' at char 6, must be: '(']"
    );
    assert_eq!(
        error("ALARM(a"),
        "Error in AlarmRule [Unexpected end of AlarmRule at char 7]"
    );
    assert_eq!(
        error("ALARM(a) AND"),
        "Error in AlarmRule [Unexpected end of AlarmRule at char 12]"
    );
    assert_eq!(
        error("   "),
        "Error in AlarmRule [Unexpected end of AlarmRule at char 3]"
    );
    assert_eq!(
        error("ALARM()"),
        "Error in AlarmRule [Unsupported token ')' at char 6]"
    );
    assert_eq!(
        error("ALARM(\"\")"),
        "Error in AlarmRule [Unsupported token '\"\"' at char 6]"
    );
    assert_eq!(
        error("ALARM(\"a\" \"b\")"),
        "Error in AlarmRule [Unsupported token '\"b\"' at char 10, must be: ')']"
    );
    assert_eq!(
        error("ALARM(\"unterminated)"),
        "Error in AlarmRule [Unsupported token '\"unterminated)' at char 6, must be: '\"']"
    );
    assert_eq!(
        error("WARNING(a)"),
        "Error in AlarmRule [Unsupported token 'WARNING' at char 0]"
    );
    assert_eq!(
        error("ALARM(a) XOR ALARM(b)"),
        "Error in AlarmRule [Unsupported token 'XOR' at char 9]"
    );
    assert_eq!(
        error("(ALARM(a)"),
        "Error in AlarmRule [Unexpected end of AlarmRule at char 9]"
    );
    assert_eq!(
        error("ALARM(a))"),
        "Error in AlarmRule [Unsupported token ')' at char 8]"
    );
    assert_eq!(
        error("AND"),
        "Error in AlarmRule [Unsupported token 'AND' at char 0]"
    );
    assert_eq!(
        error("\"a\""),
        "Error in AlarmRule [Unsupported token '\"a\"' at char 0]"
    );
    // Positions count UTF-16 units, as Java does: "é" is one, "😀" two.
    assert_eq!(
        error("OK(\"é😀\") x"),
        "Error in AlarmRule [Unsupported token 'x' at char 10]"
    );
}

#[test]
fn length_limits() {
    assert_eq!(
        error(""),
        "1 validation error detected: Value '' at 'alarmRule' failed to satisfy constraint: Member must have length greater than or equal to 1"
    );
    // Exactly 10240 characters is allowed: ALARM("x...x") with a long name.
    let longest = format!("ALARM(\"{}\")", "x".repeat(MAX_RULE_LENGTH - 9));
    assert_eq!(longest.len(), MAX_RULE_LENGTH);
    assert_eq!(parse(&longest).alarms().len(), 1);
    let too_long = format!("ALARM(\"{}\")", "x".repeat(MAX_RULE_LENGTH - 8));
    assert_eq!(
        error(&too_long),
        format!("1 validation error detected: Value '{too_long}' at 'alarmRule' failed to satisfy constraint: Member must have length less than or equal to 10240")
    );
}

#[test]
fn alarm_and_element_limits() {
    let names: Vec<String> = (0..MAX_RULE_ALARMS)
        .map(|i| format!("ALARM(a{i})"))
        .collect();
    let rule = parse(&names.join(" OR "));
    assert_eq!(rule.alarms().len(), MAX_RULE_ALARMS);
    let one_more = format!("{} OR ALARM(extra)", names.join(" OR "));
    assert_eq!(
        error(&one_more),
        "Error in AlarmRule [AlarmRule can reference at most 100 alarms]"
    );
    // The same alarm named many times counts once towards the 100 ...
    let same: Vec<&str> = vec!["ALARM(a)"; MAX_RULE_ELEMENTS];
    assert_eq!(parse(&same.join(" OR ")).alarms(), ["a"]);
    // ... but each mention is an element.
    let too_many: Vec<&str> = vec!["ALARM(a)"; MAX_RULE_ELEMENTS + 1];
    assert_eq!(
        error(&too_many.join(" OR ")),
        "Error in AlarmRule [AlarmRule can have at most 500 elements]"
    );
    // Parentheses count too, which also bounds nesting.
    let nested = format!("{}TRUE{}", "(".repeat(499), ")".repeat(499));
    assert_eq!(parse(&nested).expr(), &RuleExpr::Constant(true));
    let deeper = format!("{}TRUE{}", "(".repeat(500), ")".repeat(500));
    assert_eq!(
        error(&deeper),
        "Error in AlarmRule [AlarmRule can have at most 500 elements]"
    );
    // Nesting as deep as the length allows is refused, not a stack overflow.
    let deepest = "(".repeat(MAX_RULE_LENGTH);
    assert_eq!(
        error(&deepest),
        "Error in AlarmRule [AlarmRule can have at most 500 elements]"
    );
    // A rule of nothing but NOTs is read without recursion.
    let nots = format!("{}TRUE", "NOT ".repeat(2558));
    assert_eq!(parse(&nots).expr(), &RuleExpr::Constant(true));
    let nots = format!("{}TRUE", "NOT ".repeat(2559));
    assert_eq!(nots.len(), MAX_RULE_LENGTH);
    assert_eq!(parse(&nots).expr(), &not(RuleExpr::Constant(true)));
}

#[test]
fn evaluation_follows_each_function_and_operator() {
    let states = |alarm: &str| match alarm {
        "alarming" => Some(AlarmState::Alarm),
        "fine" => Some(AlarmState::Ok),
        "unknown" => Some(AlarmState::InsufficientData),
        _ => None,
    };
    let holds = |text: &str| parse(text).evaluate(&states);
    assert!(holds("ALARM(alarming)"));
    assert!(!holds("ALARM(fine)"));
    assert!(!holds("ALARM(unknown)"));
    assert!(holds("OK(fine)"));
    assert!(!holds("OK(alarming)"));
    assert!(holds("INSUFFICIENT_DATA(unknown)"));
    assert!(!holds("INSUFFICIENT_DATA(fine)"));
    // An alarm the lookup does not know satisfies no function.
    assert!(!holds(
        "ALARM(nowhere) OR OK(nowhere) OR INSUFFICIENT_DATA(nowhere)"
    ));
    assert!(holds("TRUE"));
    assert!(!holds("FALSE"));
    assert!(holds("NOT FALSE"));
    assert!(!holds("ALARM(alarming) AND OK(alarming)"));
    assert!(holds("ALARM(alarming) AND OK(fine)"));
    assert!(holds("ALARM(fine) OR OK(fine)"));
    assert!(!holds("ALARM(fine) OR OK(alarming)"));
    // Precedence matters: a OR (b AND c) versus (a OR b) AND c.
    assert!(holds("OK(fine) OR ALARM(fine) AND FALSE"));
    assert!(!holds("(OK(fine) OR ALARM(fine)) AND FALSE"));
    assert!(holds("ALARM(alarming) AND NOT ALARM(fine)"));
}

#[test]
fn errors_become_validation_errors() {
    let Err(rule_error) = AlarmRule::parse("()") else {
        panic!("should not parse");
    };
    assert_eq!(
        rule_error.to_string(),
        "Error in AlarmRule [Unsupported token ')' at char 1]"
    );
    let aws: AwsError = rule_error.into();
    assert_eq!(aws.code, "ValidationError");
    assert_eq!(aws.status, 400);
    assert_eq!(
        aws.message,
        "Error in AlarmRule [Unsupported token ')' at char 1]"
    );
}

#[test]
fn alarms_that_do_not_exist_are_named() {
    let rule = parse("ALARM(a) OR ALARM(gone) OR OK(\"also gone\") OR ALARM(gone)");
    let exists = |alarm: &str| alarm == "a";
    let Err(missing) = rule.check_alarms_exist(&exists) else {
        panic!("two alarms are missing");
    };
    assert_eq!(
        missing.message(),
        "Could not save the composite alarm as alarms [gone, also gone] in the alarm rule do not exist"
    );
    assert_eq!(rule.check_alarms_exist(&|_: &str| true), Ok(()));
    assert_eq!(parse("TRUE").check_alarms_exist(&|_: &str| false), Ok(()));
}
