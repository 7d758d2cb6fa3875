import { useEffect, useState } from "react";

/** `payload` drawn as a QR code (the encoder is loaded when first needed). */
export function QrImage({ payload, alt }: { payload: string; alt: string }) {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    let cancelled = false;
    void import("qrcode").then((qrcode) =>
      qrcode.toDataURL(payload, { margin: 2, width: 264, errorCorrectionLevel: "M" }).then((data) => {
        if (!cancelled) setUrl(data);
      }),
    );
    return () => {
      cancelled = true;
    };
  }, [payload]);
  return url ? (
    <img src={url} alt={alt} width={264} height={264} className="mx-auto rounded border border-slate-200" data-testid="qr" />
  ) : (
    <div className="mx-auto h-[264px] w-[264px] animate-pulse rounded bg-slate-100" aria-hidden="true" />
  );
}
