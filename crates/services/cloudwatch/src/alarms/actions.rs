//! Alarm actions: what an action ARN asks for, and the [`ActionSink`]
//! through which CloudWatch asks other services to do it (the binary wires
//! it to the EC2 service, and to Auto Scaling once that exists). Every
//! attempt ends in an [`ActionResult`] that alarm history records; nothing
//! is dropped silently.

use nimbus_core::BoxFuture;

/// What an EC2 alarm action does to the alarm's instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ec2Action {
    Stop,
    Terminate,
    Reboot,
    Recover,
}

impl Ec2Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Ec2Action::Stop => "stop",
            Ec2Action::Terminate => "terminate",
            Ec2Action::Reboot => "reboot",
            Ec2Action::Recover => "recover",
        }
    }
}

/// An action ARN, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `arn:aws:automate:REGION:ec2:stop|terminate|reboot|recover`, or the
    /// older `arn:aws:swf:REGION:ACCOUNT:action/actions/AWS_EC2.InstanceId.Stop/1.0`.
    Ec2(Ec2Action),
    /// `arn:aws:autoscaling:REGION:ACCOUNT:scalingPolicy:...`.
    AutoScaling,
    /// `arn:aws:sns:REGION:ACCOUNT:TOPIC`.
    Sns,
    /// Anything else with an ARN's shape (Systems Manager, Lambda, ...).
    Other,
}

impl Action {
    /// The action an ARN names; `None` when it is not an ARN at all.
    pub fn parse(arn: &str) -> Option<Action> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() < 6 || parts[0] != "arn" || parts[2].is_empty() {
            return None;
        }
        let (service, resource) = (parts[2], parts[5]);
        Some(match service {
            "automate" if parts[4] == "ec2" => match resource {
                "stop" => Action::Ec2(Ec2Action::Stop),
                "terminate" => Action::Ec2(Ec2Action::Terminate),
                "reboot" => Action::Ec2(Ec2Action::Reboot),
                "recover" => Action::Ec2(Ec2Action::Recover),
                _ => Action::Other,
            },
            "swf" => match resource {
                "action/actions/AWS_EC2.InstanceId.Stop/1.0" => Action::Ec2(Ec2Action::Stop),
                "action/actions/AWS_EC2.InstanceId.Terminate/1.0" => {
                    Action::Ec2(Ec2Action::Terminate)
                }
                "action/actions/AWS_EC2.InstanceId.Reboot/1.0" => Action::Ec2(Ec2Action::Reboot),
                _ => Action::Other,
            },
            "autoscaling" => Action::AutoScaling,
            "sns" => Action::Sns,
            _ => Action::Other,
        })
    }
}

/// Who asks for an action: the alarm's account, region, name, and the
/// instance its metric names (the `InstanceId` dimension), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRequest {
    pub account: String,
    pub region: String,
    pub alarm_name: String,
    pub alarm_arn: String,
    pub arn: String,
    pub action: Action,
    pub instance_id: Option<String>,
    /// The state the alarm entered.
    pub new_state: String,
}

/// How an attempt went: `Err` holds the reason history shows.
pub type ActionResult = Result<(), String>;

/// The services alarm actions call on.
pub trait ActionSink: Send + Sync {
    /// Stops, terminates, reboots or recovers `instance_id` in the alarm's
    /// account and region.
    fn ec2(&self, request: &ActionRequest, instance_id: &str) -> BoxFuture<'_, ActionResult>;

    /// Executes the Auto Scaling policy `request.arn`.
    fn autoscaling(&self, request: &ActionRequest) -> BoxFuture<'_, ActionResult>;
}

/// Carries out one action through `sink`; what cannot be done here says why.
pub async fn perform(sink: Option<&dyn ActionSink>, request: &ActionRequest) -> ActionResult {
    match &request.action {
        Action::Ec2(_) => {
            let Some(instance) = request.instance_id.as_deref() else {
                return Err(format!(
                    "The alarm {} has no InstanceId dimension, so the EC2 action {} has no instance to act on",
                    request.alarm_name, request.arn
                ));
            };
            match sink {
                Some(sink) => sink.ec2(request, instance).await,
                None => Err("EC2 is not available to alarm actions in this nimbus".into()),
            }
        }
        Action::AutoScaling => match sink {
            Some(sink) => sink.autoscaling(request).await,
            None => Err("Auto Scaling is not available to alarm actions in this nimbus".into()),
        },
        Action::Sns => Err(format!(
            "Not deliverable: nimbus does not serve Amazon SNS, so no notification was published to {}",
            request.arn
        )),
        Action::Other => Err(format!(
            "Not deliverable: nimbus cannot carry out the action {}",
            request.arn
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_arns_are_classified() {
        assert_eq!(
            Action::parse("arn:aws:automate:us-east-1:ec2:stop"),
            Some(Action::Ec2(Ec2Action::Stop))
        );
        assert_eq!(
            Action::parse("arn:aws:automate:eu-west-1:ec2:terminate"),
            Some(Action::Ec2(Ec2Action::Terminate))
        );
        assert_eq!(
            Action::parse(
                "arn:aws:swf:us-east-1:123456789012:action/actions/AWS_EC2.InstanceId.Reboot/1.0"
            ),
            Some(Action::Ec2(Ec2Action::Reboot))
        );
        assert_eq!(
            Action::parse("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:abc:autoScalingGroupName/g:policyName/p"),
            Some(Action::AutoScaling)
        );
        assert_eq!(
            Action::parse("arn:aws:sns:us-east-1:123456789012:topic"),
            Some(Action::Sns)
        );
        assert_eq!(
            Action::parse("arn:aws:lambda:us-east-1:1:function:f"),
            Some(Action::Other)
        );
        assert_eq!(Action::parse("not-an-arn"), None);
        assert_eq!(Action::parse("arn:aws::x:y:z"), None);
    }

    #[tokio::test]
    async fn what_cannot_be_done_says_why() {
        let request = |arn: &str, instance: Option<&str>| ActionRequest {
            account: "1".into(),
            region: "r".into(),
            alarm_name: "a".into(),
            alarm_arn: "arn:aws:cloudwatch:r:1:alarm:a".into(),
            arn: arn.into(),
            action: Action::parse(arn).unwrap_or(Action::Other),
            instance_id: instance.map(str::to_string),
            new_state: "ALARM".into(),
        };
        let sns = perform(None, &request("arn:aws:sns:r:1:t", None)).await;
        assert!(sns.unwrap_err().contains("SNS"));
        let ec2 = perform(None, &request("arn:aws:automate:r:ec2:stop", None)).await;
        assert!(ec2.unwrap_err().contains("no InstanceId"));
        let asg = perform(
            None,
            &request("arn:aws:autoscaling:r:1:scalingPolicy:x", None),
        )
        .await;
        assert!(asg.unwrap_err().contains("Auto Scaling"));
    }
}
