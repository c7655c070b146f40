//! The admin commands: each is one or two API calls to a running creditd, then a table
//! (reads) or a sentence saying what changed (writes). The server decides every rule;
//! the CLI only asks and shows.

use anyhow::{Context, bail};
use creditd_server::auth::key_name;
use creditd_server::dto::{
    AccountDto, AccountPageDto, AdjustmentDto, AdjustmentRequest, ApiKeyDto, ApiKeyListDto,
    ApiKeyRequest, BalanceDto, BucketDto, GrantRequest, HoldDto, LedgerPageDto, PurchaseDto,
};

use crate::cli::{
    AccountCommands, AdjustArgs, GrantArgs, HoldCommands, KeyCommands, LedgerArgs, Output,
    PurchaseCommands, Remote,
};
use crate::client::Api;
use crate::local;
use crate::render::{Rows, or_blank, print, say, signed, when};

/// `creditd keys …`.
pub async fn keys(command: KeyCommands) -> anyhow::Result<()> {
    match command {
        KeyCommands::Create {
            name,
            role,
            database: Some(database),
            create,
            ..
        } => local::break_glass_key(&database, create, &name, &role).await,
        KeyCommands::Create {
            name,
            role,
            database: None,
            remote,
            ..
        } => {
            let name = key_name(&name)
                .map_err(|why| anyhow::anyhow!("--name {why}"))?
                .to_owned();
            let api = Api::new(&remote)?;
            let key: ApiKeyDto = api
                .post(&["v1", "api-keys"], &ApiKeyRequest { name, role })
                .await?;
            print_new_key(&key)
        }
        KeyCommands::List { remote, output } => {
            let list: ApiKeyListDto = Api::new(&remote)?.get(&["v1", "api-keys"], &[]).await?;
            let mut rows = Rows::new(&["id", "name", "role", "created", "revoked"]);
            for key in &list.keys {
                rows.push(vec![
                    key.id.clone(),
                    key.name.clone(),
                    key.role.clone(),
                    key.created_at.to_string(),
                    or_blank(key.revoked_at),
                ]);
            }
            let summary = if list.keys.is_empty() {
                vec!["No API key is stored (a key the server takes from CREDITD_ADMIN_KEY is not listed).".to_owned()]
            } else {
                Vec::new()
            };
            print(output, &list, &summary, &rows)
        }
        KeyCommands::Revoke { id, remote } => {
            let api = Api::new(&remote)?;
            let list: ApiKeyListDto = api.get(&["v1", "api-keys"], &[]).await?;
            let Some(key) = list.keys.iter().find(|key| key.id == id) else {
                bail!("there is no API key {id:?} (`creditd keys list` shows them)");
            };
            api.delete(&["v1", "api-keys", &id]).await?;
            say(&format!(
                "Revoked {} key {} ({}): it stops working now.",
                key.role, key.id, key.name
            ))
        }
    }
}

/// Prints a key just created, with its secret, once.
pub fn print_new_key(key: &ApiKeyDto) -> anyhow::Result<()> {
    say(&format!(
        "Created {} key {} ({}).\nIts secret is shown only now:\n\n    {}",
        key.role,
        key.id,
        key.name,
        key.key.as_deref().unwrap_or("(not shown)")
    ))
}

/// `creditd account …`.
pub async fn account(command: AccountCommands) -> anyhow::Result<()> {
    match command {
        AccountCommands::Show {
            account,
            remote,
            output,
        } => {
            let found: AccountDto = Api::new(&remote)?
                .get(&["v1", "accounts", &account], &[])
                .await?;
            let membership = &found.membership;
            let rows = Rows::fields(vec![
                ("account", found.id.clone()),
                ("time zone", found.timezone.clone()),
                ("created", found.created_at.to_string()),
                ("membership", membership.status.to_string()),
                (
                    "plan",
                    membership.plan.clone().unwrap_or_else(|| "-".into()),
                ),
                ("period start", when(membership.period_start)),
                ("period end", when(membership.period_end)),
                ("trial end", when(membership.trial_end)),
            ]);
            print(output, &found, &[], &rows)
        }
        AccountCommands::Search {
            prefix,
            limit,
            remote,
            output,
        } => {
            let query = [("prefix", prefix.clone()), ("limit", limit.to_string())];
            let page: AccountPageDto = Api::new(&remote)?.get(&["v1", "accounts"], &query).await?;
            let mut rows = Rows::new(&[
                "account",
                "time zone",
                "membership",
                "plan",
                "period end",
                "created",
            ]);
            for found in &page.accounts {
                rows.push(vec![
                    found.id.clone(),
                    found.timezone.clone(),
                    found.membership.status.to_string(),
                    or_blank(found.membership.plan.as_ref()),
                    or_blank(found.membership.period_end),
                    found.created_at.to_string(),
                ]);
            }
            let summary = match (page.accounts.len(), &page.next_cursor) {
                (0, _) => vec![format!("No account id starts with {prefix:?}.")],
                (n, Some(_)) => vec![format!(
                    "The first {n} accounts starting with {prefix:?} (more with --limit):"
                )],
                (n, None) => vec![format!("{n} account(s) starting with {prefix:?}:")],
            };
            print(output, &page, &summary, &rows)
        }
    }
}

/// `creditd balance ACCOUNT`.
pub async fn balance(account: &str, remote: &Remote, output: Output) -> anyhow::Result<()> {
    let balance: BalanceDto = Api::new(remote)?
        .get(&["v1", "accounts", account, "balance"], &[])
        .await?;
    let mut summary = vec![
        format!("Balance of {} as of {}", balance.account_id, balance.as_of),
        format!(
            "  total {}   general {} available, {} held, {} frozen   agent {} available, {} held",
            balance.total,
            balance.general.available,
            balance.general.held,
            balance.general.frozen,
            balance.agent.available,
            balance.agent.held
        ),
    ];
    if let Some(next) = &balance.next_expiry {
        summary.push(format!(
            "  next expiry: {} credits at {}",
            next.amount, next.at
        ));
    }
    let mut rows = Rows::new(&[
        "bucket",
        "kind",
        "source",
        "remaining",
        "granted",
        "granted at",
        "expires",
        "frozen",
    ]);
    for bucket in &balance.buckets {
        rows.push(vec![
            bucket.id.clone(),
            bucket.kind.to_string(),
            bucket.source.to_string(),
            bucket.remaining.to_string(),
            bucket.granted.to_string(),
            bucket.granted_at.to_string(),
            bucket
                .expires_at
                .map_or_else(|| "never".to_owned(), |at| at.to_string()),
            if bucket.frozen { "yes" } else { "" }.to_owned(),
        ]);
    }
    print(output, &balance, &summary, &rows)
}

/// `creditd ledger ACCOUNT`.
pub async fn ledger(args: &LedgerArgs) -> anyhow::Result<()> {
    let mut query = vec![("limit", args.limit.to_string())];
    query.extend(args.entry_type.clone().map(|t| ("type", t)));
    query.extend(args.since.map(|at| ("since", at.to_string())));
    query.extend(args.until.map(|at| ("until", at.to_string())));
    let page: LedgerPageDto = Api::new(&args.remote)?
        .get(&["v1", "accounts", &args.account, "ledger"], &query)
        .await?;
    let mut rows = Rows::new(&[
        "id",
        "at",
        "type",
        "amount",
        "kind",
        "source",
        "bucket",
        "hold",
        "description",
    ]);
    for entry in &page.entries {
        rows.push(vec![
            entry.id.clone(),
            entry.at.to_string(),
            entry.entry_type.to_string(),
            format!("{:+}", entry.amount),
            entry.kind.to_string(),
            entry.source.to_string(),
            entry.bucket_id.clone(),
            or_blank(entry.hold_id.as_ref()),
            entry.description.clone(),
        ]);
    }
    print(args.output, &page, &[], &rows)
}

/// Refuses a write on an account that does not exist unless `create`: an unknown id on
/// a write is more often a typo than a new user.
async fn check_account(api: &Api, account: &str, create: bool) -> anyhow::Result<()> {
    if create {
        return Ok(());
    }
    let found: Option<AccountDto> = api.find(&["v1", "accounts", account]).await?;
    if found.is_none() {
        bail!(
            "there is no account {account:?}: check the id (`creditd account search PREFIX`), \
             or pass --create to open it"
        );
    }
    Ok(())
}

/// `creditd grant ACCOUNT`.
pub async fn grant(args: GrantArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.write.remote)?;
    check_account(&api, &args.account, args.write.create).await?;
    if args.source == "compensation" && args.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        bail!("a compensation grant needs --reason: the audit trail keeps why it was given");
    }
    let request = GrantRequest {
        reason: args.reason,
        kind: args.kind,
        amount: args.amount,
        source: args.source,
        expires_at: args.expires_at,
        valid_for: args.valid_for,
        campaign: args.campaign,
        note: args.note,
    };
    let key = args.write.idempotency_key.unwrap_or_else(Api::new_key);
    let (bucket, replayed): (BucketDto, bool) = api
        .post_once(&["v1", "accounts", &args.account, "grants"], &request, &key)
        .await?;
    let expiry = bucket
        .expires_at
        .map_or_else(|| "never expire".to_owned(), |at| format!("expire {at}"));
    say(&format!(
        "{}{} {} credits ({}) to {}: bucket {}; they {expiry}.",
        before(replayed),
        signed(i64::try_from(bucket.granted).unwrap_or(i64::MAX)),
        bucket.kind,
        bucket.source,
        args.account,
        bucket.id,
    ))
}

/// `creditd adjust ACCOUNT`.
pub async fn adjust(args: AdjustArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.write.remote)?;
    check_account(&api, &args.account, args.write.create).await?;
    let request = AdjustmentRequest {
        amount: args.amount,
        kind: args.kind,
        reason: args.reason,
    };
    let key = args.write.idempotency_key.unwrap_or_else(Api::new_key);
    let (adjusted, replayed): (AdjustmentDto, bool) = api
        .post_once(
            &["v1", "accounts", &args.account, "adjustments"],
            &request,
            &key,
        )
        .await?;
    let entry = &adjusted.entry;
    let ids: Vec<&str> = adjusted.entries.iter().map(|e| e.id.as_str()).collect();
    let direction = if entry.amount > 0 { "to" } else { "from" };
    say(&format!(
        "{}{} {} credits {direction} {}, reason: {} (ledger {}).",
        before(replayed),
        signed(entry.amount),
        entry.kind,
        args.account,
        entry.note.as_deref().unwrap_or(""),
        ids.join(", ")
    ))
}

/// How a write's sentence starts when it replays an earlier answer.
fn before(replayed: bool) -> &'static str {
    if replayed {
        "Done before under this Idempotency-Key, nothing applied again: "
    } else {
        ""
    }
}

/// `creditd hold …`.
pub async fn hold(command: HoldCommands) -> anyhow::Result<()> {
    let HoldCommands::Show {
        hold,
        remote,
        output,
    } = command;
    let Some(found): Option<HoldDto> = Api::new(&remote)?.find(&["v1", "holds", &hold]).await?
    else {
        bail!("there is no hold {hold:?} (hold ids read h{{n}}_{{account}})");
    };
    let mut summary = vec![
        format!(
            "Hold {} of {}: {} × {} ({} tier), {} credits, {}",
            found.id,
            found.account_id,
            found.quantity,
            found.feature,
            found.tier,
            found.amount,
            found.status
        ),
        format!(
            "  placed {}, {} {}",
            found.created_at,
            if found.settled_at.is_some() {
                "was to expire"
            } else {
                "expires"
            },
            found.expires_at
        ),
    ];
    if let (Some(at), Some(charged), Some(refunded)) = (
        found.settled_at,
        found.captured_amount,
        found.refunded_amount,
    ) {
        summary.push(format!(
            "  settled {at}: {charged} charged for {} delivered, {refunded} returned",
            found.captured_quantity.unwrap_or(0)
        ));
    }
    if let Some(reference) = &found.reference {
        summary.push(format!("  reference: {reference}"));
    }
    let mut rows = Rows::new(&["bucket", "kind", "source", "amount"]);
    for allocation in &found.allocations {
        rows.push(vec![
            allocation.bucket_id.clone(),
            allocation.kind.to_string(),
            allocation.source.to_string(),
            allocation.amount.to_string(),
        ]);
    }
    print(output, &found, &summary, &rows)
}

/// `creditd purchase …`.
pub async fn purchase(command: PurchaseCommands) -> anyhow::Result<()> {
    let PurchaseCommands::Show {
        order_id,
        remote,
        output,
    } = command;
    let found: Option<PurchaseDto> = Api::new(&remote)?
        .find(&["v1", "purchases", &order_id])
        .await
        .context("looking up the order")?;
    let Some(found) = found else {
        bail!("no purchase is recorded under order id {order_id:?}");
    };
    let paid = found.paid.as_ref().map_or_else(
        || "-".to_owned(),
        |paid| format!("{} {} (minor units)", paid.amount_minor, paid.currency),
    );
    let rows = Rows::fields(vec![
        ("order", found.order_id.clone()),
        ("account", found.account_id.clone()),
        ("credits", found.credits.to_string()),
        ("bucket", found.bucket_id.clone()),
        ("paid", paid),
        ("paid at", found.paid_at.to_string()),
        ("recorded at", found.recorded_at.to_string()),
        ("expires", found.expires_at.to_string()),
    ]);
    print(output, &found, &[], &rows)
}
