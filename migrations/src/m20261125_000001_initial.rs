//! The tables of the walking skeleton: events, the asset registry and its
//! tags and tag patterns, connectors, rules and their versions, work orders,
//! the outbox, the status history and the sandbox EAM.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000001_initial"
    }
}

fn id(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).text().not_null().primary_key().to_owned()
}
fn text(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).text().not_null().to_owned()
}
fn text_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).text().null().to_owned()
}
fn int(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).integer().not_null().to_owned()
}
fn int_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).integer().null().to_owned()
}
fn boolean(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).boolean().not_null().to_owned()
}
fn ts(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).timestamp_with_time_zone().not_null().to_owned()
}
fn ts_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).timestamp_with_time_zone().null().to_owned()
}
fn json(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).json().not_null().to_owned()
}

fn table(name: &str, cols: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(Alias::new(name)).if_not_exists();
    for mut c in cols {
        t.col(&mut c);
    }
    t.to_owned()
}

fn index(table: &str, name: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(name).table(Alias::new(table)).if_not_exists();
    for c in cols {
        i.col(Alias::new(*c));
    }
    if unique {
        i.unique();
    }
    i.to_owned()
}

const TABLES: &[&str] = &[
    "sandbox_orders",
    "status_history",
    "outbox",
    "work_orders",
    "rule_versions",
    "rules",
    "connectors",
    "tag_patterns",
    "asset_tags",
    "assets",
    "events",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(table(
                "events",
                vec![
                    id("id"),
                    text("source"),
                    text("ce_id"),
                    text("kind"),
                    text_null("subject"),
                    ts_null("event_time"),
                    ts("received_at"),
                    text("state"),
                    text("code"),
                    text("severity"),
                    text_null("site"),
                    text_null("asset_id"),
                    text_null("mapped_by"),
                    text("outcome"),
                    text_null("rule_id"),
                    int_null("rule_version"),
                    text_null("work_order_id"),
                    json("trace"),
                    json("payload"),
                ],
            ))
            .await?;
        // The idempotency guarantee: one row per (source, id), enforced here.
        manager.create_index(index("events", "ux_events_source_ce_id", &["source", "ce_id"], true)).await?;
        manager.create_index(index("events", "ix_events_received_at", &["received_at"], false)).await?;
        manager.create_index(index("events", "ix_events_outcome", &["outcome", "received_at"], false)).await?;
        manager.create_index(index("events", "ix_events_work_order", &["work_order_id"], false)).await?;

        manager
            .create_table(table(
                "assets",
                vec![
                    id("id"),
                    text("site"),
                    text("name"),
                    text("class"),
                    text_null("criticality"),
                    text_null("parent_id"),
                    text_null("eam_system"),
                    ts("created_at"),
                    ts("updated_at"),
                ],
            ))
            .await?;
        manager.create_index(index("assets", "ix_assets_site", &["site"], false)).await?;
        manager
            .create_table(
                table("asset_tags", vec![id("tag"), text("asset_id")])
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_asset_tags_asset")
                            .from(Alias::new("asset_tags"), Alias::new("asset_id"))
                            .to(Alias::new("assets"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager.create_index(index("asset_tags", "ix_asset_tags_asset", &["asset_id"], false)).await?;
        manager
            .create_table(table(
                "tag_patterns",
                vec![id("id"), text("pattern"), text("asset_template"), int("position"), ts("created_at")],
            ))
            .await?;

        manager
            .create_table(table(
                "connectors",
                vec![id("name"), text("kind"), json("config"), boolean("enabled"), ts("created_at"), ts("updated_at")],
            ))
            .await?;

        manager
            .create_table(table(
                "rules",
                vec![
                    id("id"),
                    text("name"),
                    boolean("enabled"),
                    int("position"),
                    int("version"),
                    json("definition"),
                    ts("created_at"),
                    ts("updated_at"),
                ],
            ))
            .await?;
        manager.create_index(index("rules", "ux_rules_name", &["name"], true)).await?;
        manager
            .create_table(
                table(
                    "rule_versions",
                    vec![
                        text("rule_id"),
                        int("version"),
                        text("name"),
                        boolean("enabled"),
                        int("position"),
                        json("definition"),
                        ts("created_at"),
                    ],
                )
                .primary_key(Index::create().col(Alias::new("rule_id")).col(Alias::new("version")))
                .to_owned(),
            )
            .await?;

        manager
            .create_table(table(
                "work_orders",
                vec![
                    id("id"),
                    text("connector"),
                    text("rule_id"),
                    int("rule_version"),
                    text("dedup_key"),
                    text_null("open_key"),
                    text_null("asset_id"),
                    text_null("site"),
                    text("title"),
                    text("description"),
                    text("work_type"),
                    int("priority"),
                    text("status"),
                    text_null("external_id"),
                    text_null("external_url"),
                    int("event_count"),
                    ts("first_event_time"),
                    ts("last_event_time"),
                    ts("created_at"),
                    ts("updated_at"),
                    ts_null("delivered_at"),
                    json("trace"),
                    text_null("last_error"),
                ],
            ))
            .await?;
        // Serialises dedup: at most one open order per key, across replicas.
        // `open_key` is NULL once the order is no longer open.
        manager.create_index(index("work_orders", "ux_work_orders_open_key", &["open_key"], true)).await?;
        manager.create_index(index("work_orders", "ix_work_orders_status", &["status", "created_at"], false)).await?;
        manager.create_index(index("work_orders", "ix_work_orders_asset", &["asset_id"], false)).await?;

        manager
            .create_table(table(
                "outbox",
                vec![
                    id("id"),
                    text("work_order_id"),
                    text("kind"),
                    text("status"),
                    int("attempts"),
                    ts("next_attempt_at"),
                    ts_null("locked_until"),
                    text_null("last_error"),
                    ts("created_at"),
                    ts("updated_at"),
                ],
            ))
            .await?;
        manager.create_index(index("outbox", "ix_outbox_due", &["status", "next_attempt_at"], false)).await?;

        manager
            .create_table(table(
                "status_history",
                vec![
                    id("id"),
                    text("work_order_id"),
                    text("status"),
                    text_null("external_status"),
                    text("source"),
                    ts("at"),
                    ts("recorded_at"),
                    text_null("note"),
                ],
            ))
            .await?;
        manager
            .create_index(index("status_history", "ix_status_history_order", &["work_order_id", "at"], false))
            .await?;

        manager
            .create_table(table(
                "sandbox_orders",
                vec![
                    id("id"),
                    text("reference"),
                    text("title"),
                    text("description"),
                    text_null("asset_id"),
                    text_null("site"),
                    text("work_type"),
                    int("priority"),
                    text("status"),
                    json("payload"),
                    ts("created_at"),
                    ts("updated_at"),
                ],
            ))
            .await?;
        manager.create_index(index("sandbox_orders", "ux_sandbox_orders_reference", &["reference"], true)).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in TABLES {
            manager.drop_table(Table::drop().table(Alias::new(*t)).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
