// The tenant's team: who belongs and with which role, the invitations
// pending, and (for owners) inviting, changing roles and removing. An
// invitation's link is shown once; wablast sends no email.

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { useMe } from "../api/queries";
import type { CreatedInvitation, Invitation, Member, Page, TeamRole } from "../api/types";
import { Layout } from "../components/Layout";
import { OnceSecret } from "../components/Secret";
import { Alert, ConfirmActions, Dialog, Field, Spinner } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n } from "../i18n";

const teamKeys = {
  members: ["members"] as const,
  invitations: ["members", "invitations"] as const,
};

/** The link an invitee opens: the console's accept page with the token. */
export function acceptLink(origin: string, acceptPath: string): string {
  return `${origin.replace(/\/$/, "")}${acceptPath}`;
}

export function Members() {
  const { t } = useI18n();
  const format = useFormat();
  const me = useMe();
  const client = useQueryClient();
  const titleId = useId();
  const members = useQuery({
    queryKey: teamKeys.members,
    queryFn: ({ signal }) => api<Page<Member>>("/api/v1/members", { signal }),
  });
  const invitations = useQuery({
    queryKey: teamKeys.invitations,
    queryFn: ({ signal }) => api<Page<Invitation>>("/api/v1/members/invitations", { signal }),
  });
  const owner = me.data?.user?.role === "owner";
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<TeamRole>("member");
  const [created, setCreated] = useState<CreatedInvitation | null>(null);
  const [removing, setRemoving] = useState<Member | null>(null);
  const refresh = () => void client.invalidateQueries({ queryKey: teamKeys.members });

  const invite = useMutation({
    mutationFn: () => api<CreatedInvitation>("/api/v1/members/invite", { method: "POST", body: { email: email.trim(), role } }),
    onSuccess: (invitation) => {
      setCreated(invitation);
      setEmail("");
      refresh();
    },
  });
  const changeRole = useMutation({
    mutationFn: ({ member, to }: { member: Member; to: TeamRole }) =>
      api<Member>(`/api/v1/members/${member.user_id}`, { method: "PATCH", body: { role: to } }),
    onSuccess: () => {
      refresh();
      void client.invalidateQueries({ queryKey: ["me"] });
    },
  });
  const remove = useMutation({
    mutationFn: (member: Member) => api<null>(`/api/v1/members/${member.user_id}`, { method: "DELETE" }),
    onSuccess: () => {
      setRemoving(null);
      refresh();
    },
  });
  const withdraw = useMutation({
    mutationFn: (invitation: Invitation) => api<null>(`/api/v1/members/invitations/${invitation.id}`, { method: "DELETE" }),
    onSuccess: refresh,
  });
  const errors = formErrors(t, invite.error, ["email", "role"]);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    invite.mutate();
  };

  return (
    <Layout title={t("team.title")}>
      <p className="mb-6 max-w-3xl text-sm text-slate-700">{t("team.intro")}</p>
      <section aria-labelledby={titleId} className="space-y-4">
        <h2 id={titleId} className="text-lg font-semibold">
          {t("team.members")}
        </h2>
        {members.error ? <Alert>{errorText(t, members.error)}</Alert> : null}
        {members.isPending ? <Spinner label={t("common.loading")} /> : null}
        {changeRole.error ? <Alert>{errorText(t, changeRole.error)}</Alert> : null}
        <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white" data-testid="members">
          {members.data?.items.map((member) => (
            <li key={member.user_id} className="flex flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3" data-testid="member">
              <div className="min-w-0 flex-1">
                <p className="truncate font-medium">{member.name || member.email}</p>
                <p className="text-sm text-slate-700">
                  {member.email} · {t("team.joined", { date: format.date(member.joined_at) })}
                </p>
              </div>
              {owner ? (
                <>
                  <label className="text-sm">
                    <span className="sr-only">{t("team.roleOf", { email: member.email })}</span>
                    <select
                      className="input"
                      value={member.role}
                      disabled={changeRole.isPending}
                      onChange={(e) => changeRole.mutate({ member, to: e.target.value as TeamRole })}
                    >
                      <option value="owner">{t("team.role.owner")}</option>
                      <option value="member">{t("team.role.member")}</option>
                    </select>
                  </label>
                  <button
                    type="button"
                    className="btn-secondary text-red-800"
                    onClick={() => setRemoving(member)}
                    aria-label={t("team.removeOne", { email: member.email })}
                  >
                    {t("team.remove")}
                  </button>
                </>
              ) : (
                <span className="text-sm text-slate-700">{t(member.role === "owner" ? "team.role.owner" : "team.role.member")}</span>
              )}
            </li>
          ))}
        </ul>
      </section>

      <section className="mt-10 space-y-4">
        <h2 className="text-lg font-semibold">{t("team.invitations")}</h2>
        {owner ? (
          <form className="card flex flex-wrap items-end gap-3" onSubmit={submit} noValidate aria-label={t("team.invite")}>
            <div className="min-w-[14rem] flex-1">
              <Field
                label={t("auth.email")}
                type="email"
                value={email}
                onChange={(e) => setEmail(e.target.value)}
                error={errors.fields.email}
              />
            </div>
            <label className="text-sm">
              <span className="mb-1 block font-medium text-slate-800">{t("team.role")}</span>
              <select className="input" value={role} onChange={(e) => setRole(e.target.value as TeamRole)}>
                <option value="member">{t("team.role.member")}</option>
                <option value="owner">{t("team.role.owner")}</option>
              </select>
            </label>
            <button type="submit" className="btn-primary" disabled={invite.isPending}>
              {invite.isPending ? t("common.wait") : t("team.invite")}
            </button>
            {errors.form ? (
              <div className="w-full">
                <Alert>{errors.form}</Alert>
              </div>
            ) : null}
          </form>
        ) : me.data ? (
          <p className="text-sm text-slate-700">{t("team.ownersOnly")}</p>
        ) : null}
        {withdraw.error ? <Alert>{errorText(t, withdraw.error)}</Alert> : null}
        {invitations.data && invitations.data.items.length === 0 ? (
          <p className="text-sm text-slate-700">{t("team.noInvitations")}</p>
        ) : null}
        {invitations.data && invitations.data.items.length > 0 ? (
        <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white" data-testid="invitations">
          {invitations.data.items.map((invitation) => (
            <li key={invitation.id} className="flex flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3" data-testid="invitation">
              <div className="min-w-0 flex-1">
                <p className="truncate font-medium">{invitation.email}</p>
                <p className="text-sm text-slate-700">
                  {t(invitation.role === "owner" ? "team.role.owner" : "team.role.member")} ·{" "}
                  {t("team.expires", { date: format.date(invitation.expires_at) })}
                </p>
              </div>
              {owner ? (
                <button type="button" className="btn-secondary" onClick={() => withdraw.mutate(invitation)}>
                  {t("team.withdraw")}
                </button>
              ) : null}
            </li>
          ))}
        </ul>
        ) : null}
      </section>

      <Dialog open={created !== null} title={t("team.createdTitle")} onClose={() => setCreated(null)}>
        {created ? (
          <div className="space-y-4">
            <OnceSecret
              label={t("team.linkFor", { email: created.email })}
              copyLabel={t("team.copyLink")}
              value={acceptLink(window.location.origin, created.accept_path)}
              warning={t("team.linkOnce")}
              testId="invitation-link"
            />
            <button type="button" className="btn-primary" onClick={() => setCreated(null)}>
              {t("common.done")}
            </button>
          </div>
        ) : null}
      </Dialog>
      <Dialog open={removing !== null} title={t("team.removeTitle")} onClose={() => setRemoving(null)}>
        {removing ? (
          <div className="space-y-4">
            <p className="text-sm">{t("team.removeBody", { email: removing.email })}</p>
            <ConfirmActions
              error={remove.error}
              pending={remove.isPending}
              confirm={t("team.removeConfirm")}
              onConfirm={() => remove.mutate(removing)}
              onCancel={() => setRemoving(null)}
            />
          </div>
        ) : null}
      </Dialog>
    </Layout>
  );
}
