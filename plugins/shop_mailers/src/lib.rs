//! The shop app's mailers, for its `deliver_later` jobs:
//!
//! - `UserMailer#welcome_email`: `UserMailer.with(user: user).welcome_email`
//!   or `UserMailer.welcome_email(user)`;
//! - `OrderMailer#confirmation`: `OrderMailer.confirmation(order)`.
//!
//! Users and orders are read from the app's database through `records`.

#[path = "../../order_created/src/order.rs"]
mod order;

use jobrunner_plugin_sdk::{
    Guest, Job, JobError, Level, MailerJob, PluginInfo, log, mail, plugin_info, records,
};
use order::User;

struct ShopMailers;

impl Guest for ShopMailers {
    fn describe() -> PluginInfo {
        plugin_info(
            "shop_mailers",
            env!("CARGO_PKG_VERSION"),
            &["UserMailer#welcome_email", "OrderMailer#confirmation"],
        )
    }

    fn perform(job: Job) -> Result<(), JobError> {
        let delivery = MailerJob::parse(&job)?;
        match job.class.as_str() {
            "UserMailer#welcome_email" => welcome_email(&delivery),
            "OrderMailer#confirmation" => confirmation(&delivery),
            other => Err(JobError::Permanent(format!("shop_mailers has no mail {other}"))),
        }
    }
}

/// The welcome mail, to the user given as `with(user:)` or positionally.
fn welcome_email(delivery: &MailerJob) -> Result<(), JobError> {
    let gid: String = match delivery.param("user")? {
        Some(gid) => gid,
        None => delivery.arg(0)?.ok_or_else(|| {
            JobError::Permanent(
                "UserMailer#welcome_email needs a user: with(user:) or its first argument".into(),
            )
        })?,
    };
    let user: User = records::locate_required(&gid, &["email", "name"])?;
    let name = user.name.as_deref().unwrap_or("there");
    let body = format!(
        "Hello {name},\n\nwelcome to the shop! Your account for {} is ready.\n\nSee you soon.\n",
        user.email
    );
    let id = mail::send(&mail::Email::new(&user.email, format!("Welcome to the shop, {name}!"), body))?;
    log(Level::Info, &format!("welcome mail for {gid} sent as {id}"));
    Ok(())
}

/// The order confirmation, for the order given as the first argument.
fn confirmation(delivery: &MailerJob) -> Result<(), JobError> {
    let gid: String = delivery.arg(0)?.ok_or_else(|| {
        JobError::Permanent("OrderMailer#confirmation needs an order as its first argument".into())
    })?;
    let placed = order::read(&gid)?;
    let (order, user) = (&placed.order, &placed.user);
    let body = order::confirmation(order.id, user.name.as_deref(), &placed.items, order.total.as_deref());
    let message = mail::Email::new(&user.email, format!("Order #{} confirmation", order.id), body)
        .header("X-Order-Id", order.id.to_string());
    let id = mail::send(&message)?;
    log(Level::Info, &format!("confirmation for order {} sent as {id}", order.id));
    Ok(())
}

jobrunner_plugin_sdk::export_plugin!(ShopMailers);
