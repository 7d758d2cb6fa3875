-- A campaign's WhatsApp template (what its Cloud API senders send),
-- `{name, language, parameters}`, as `CampaignCreated` carries it; null
-- for a campaign without one. Projection `campaigns`.

alter table campaigns
    add column whatsapp_template jsonb;
