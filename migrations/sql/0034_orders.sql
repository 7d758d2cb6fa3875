-- Projection `orders` (aggregate `order`): what tenants bought through the
-- payment gateway (Midtrans), for the billing history, the receipts and the
-- re-check of orders left waiting for their payment.

create table orders
(
    order_id          uuid primary key,
    tenant_id         uuid        not null,
    -- plan | top_up
    item_kind         text        not null collate "C",
    plan_id           uuid,
    plan_name         text,
    plan_period_days  integer,
    points            bigint      not null,
    -- Whole rupiah.
    amount            bigint      not null,
    -- created | pending | paid | failed | partially_refunded | refunded
    status            text        not null collate "C",
    -- denied | cancelled | expired | failed | checkout_failed
    failure_reason    text collate "C",
    transaction_id    text,
    snap_token        text,
    redirect_url      text,
    paid_at           timestamptz,
    credited_at       timestamptz,
    refunded_amount   bigint      not null default 0,
    points_taken_back bigint      not null default 0,
    points_owed       bigint      not null default 0,
    -- Payments reported for another amount than the order's (refused).
    amount_mismatches integer     not null default 0,
    created_at        timestamptz not null,
    updated_at        timestamptz not null
);

-- A tenant's orders, newest first (ids are UUID v7: creation order).
create index orders_by_tenant on orders (tenant_id, order_id desc);

-- The orders still waiting for their payment, or paid and not credited
-- yet: what the re-check looks at.
create index orders_unsettled on orders (updated_at)
    where status in ('created', 'pending') or (paid_at is not null and credited_at is null);
