//! Where CloudWatch alarm actions go: EC2 actions call the EC2 service as
//! the alarm's own account would (StopInstances, TerminateInstances,
//! RebootInstances), so the instance changes state as through the API.
//! Auto Scaling policy actions fail with a clear reason until Auto Scaling
//! is served.

use nimbus_cloudwatch::alarms::actions::{
    Action, ActionRequest, ActionResult, ActionSink, Ec2Action,
};
use nimbus_core::{BoxFuture, RequestContext, Service};
use serde_json::json;
use std::sync::Arc;

pub struct AlarmActions {
    ec2: Arc<dyn Service>,
}

impl AlarmActions {
    pub fn new(ec2: Arc<dyn Service>) -> Self {
        AlarmActions { ec2 }
    }
}

impl ActionSink for AlarmActions {
    fn ec2(&self, request: &ActionRequest, instance_id: &str) -> BoxFuture<'_, ActionResult> {
        let ctx = RequestContext::for_account(&request.account, &request.region);
        // Recovery moves an impaired instance to healthy hardware; here the
        // closest real thing is a reboot of its process tree.
        let operation = match request.action {
            Action::Ec2(Ec2Action::Stop) => "StopInstances",
            Action::Ec2(Ec2Action::Terminate) => "TerminateInstances",
            Action::Ec2(Ec2Action::Reboot) | Action::Ec2(Ec2Action::Recover) => "RebootInstances",
            _ => return Box::pin(async { Err("not an EC2 action".to_string()) }),
        };
        let input = json!({ "InstanceIds": [instance_id] });
        Box::pin(async move {
            self.ec2
                .call(&ctx, operation, input)
                .await
                .map(|_| ())
                .map_err(|e| format!("{}: {}", e.code, e.message))
        })
    }

    fn autoscaling(&self, request: &ActionRequest) -> BoxFuture<'_, ActionResult> {
        let arn = request.arn.clone();
        Box::pin(async move {
            Err(format!(
                "Auto Scaling is not served by this nimbus yet, so the scaling policy {arn} was not executed"
            ))
        })
    }
}
