import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { Media } from "../api/types";
import { useFormat, useI18n } from "../i18n";
import { getToken } from "../lib/auth";

/** Bytes in the units a person reads (KB, MB). */
export function sizeText(bytes: number, number: (n: number) => string): string {
  if (bytes < 1024) return `${number(bytes)} B`;
  if (bytes < 1024 * 1024) return `${number(Math.round(bytes / 102.4) / 10)} KB`;
  return `${number(Math.round(bytes / (1024 * 102.4)) / 10)} MB`;
}

/**
 * `blob` as a `data:` URL: the console's content security policy lets
 * images come from the console itself or `data:` only (not `blob:`).
 */
export function dataUrlOf(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** An image's bytes behind authentication, as a `data:` URL. */
function useImageUrl(id: string, enabled: boolean): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!enabled) return;
    const abort = new AbortController();
    const token = getToken();
    void fetch(`/api/v1/media/${id}/content`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: abort.signal,
    })
      .then((response) => (response.ok ? response.blob() : null))
      .then((blob) => (blob ? dataUrlOf(blob) : null))
      .then((data) => {
        if (data && !abort.signal.aborted) setUrl(data);
      })
      .catch(() => {});
    return () => {
      abort.abort();
      setUrl(null);
    };
  }, [id, enabled]);
  return url;
}

/** An uploaded medium: its picture when it is an image, its name and size. */
export function MediaThumb({ id }: { id: string }) {
  const { t } = useI18n();
  const format = useFormat();
  const media = useQuery({ queryKey: ["media", id], queryFn: ({ signal }) => api<Media>(`/api/v1/media/${id}`, { signal }) });
  const image = media.data?.mime_type.startsWith("image/") ?? false;
  const url = useImageUrl(id, image);
  if (!media.data) return <span className="text-sm text-slate-700">{t("common.loading")}</span>;
  return (
    <div className="flex items-center gap-3" data-testid="campaign-media">
      {url ? (
        <img src={url} alt={media.data.filename} className="h-16 w-16 rounded border border-slate-200 object-cover" />
      ) : null}
      <div className="text-sm">
        <p className="font-medium break-all">{media.data.filename}</p>
        <p className="text-slate-700">
          {media.data.mime_type} · {sizeText(media.data.size, format.number)}
        </p>
      </div>
    </div>
  );
}
