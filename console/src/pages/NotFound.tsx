import { Link } from "wouter";
import { Layout } from "../components/Layout";
import { EmptyState } from "../components/ui";
import { useI18n } from "../i18n";

export function NotFound() {
  const { t } = useI18n();
  return (
    <Layout title={t("notFound.title")}>
      <EmptyState title={t("notFound.body")}>
        <Link href="/" className="font-medium text-emerald-800 underline">
          {t("notFound.back")}
        </Link>
      </EmptyState>
    </Layout>
  );
}
