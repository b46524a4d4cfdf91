import { Category, dial, Guard, MessageStatus, Verdict } from "@sendguard/client";

const conn = dial(process.env.SENDGUARD_URL ?? "http://127.0.0.1:8081", { apiKey: process.env.SENDGUARD_API_KEY });
const guard = new Guard(conn.api, "acme", { region: "BR" }); // one per process and business

const phone = "(11) 98765-4321";
const ref = "outbox-42"; // your id for this send; give it to Meta as biz_opaque_callback_data
const answer = await guard.reserve(phone, Category.MARKETING, "black_friday", ref);
if (answer.verdict === Verdict.ALLOW && !answer.duplicate) {
  // ...send it through Meta's API, then report what Meta answered:
  await guard.report({ phone, messageRef: ref, status: MessageStatus.SENT, category: Category.MARKETING });
}
console.log(Verdict[answer.verdict], answer.phoneE164, answer.duplicate ? "duplicate" : "reserved");
conn.close();
