import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { Redirect, Route, Switch } from "wouter";
import { EventsProvider } from "./events";
import { useToken } from "./lib/auth";
import { ContactList } from "./pages/ContactList";
import { Contacts } from "./pages/Contacts";
import { Dashboard } from "./pages/Dashboard";
import { NotFound } from "./pages/NotFound";
import { Numbers } from "./pages/Numbers";
import { AcceptInvite, SignIn, SignUp } from "./pages/Auth";
import { Upload } from "./pages/Upload";
import { lazyPage } from "./components/lazyPage";

const Campaigns = lazyPage(() => import("./pages/Campaigns"), "Campaigns");
const CampaignNew = lazyPage<"CampaignNew", object>(() => import("./pages/CampaignNew"), "CampaignNew");
const Campaign = lazyPage(() => import("./pages/Campaign"), "Campaign");
const Inbox = lazyPage(() => import("./pages/Inbox"), "Inbox");
const Automation = lazyPage(() => import("./pages/Automation"), "Automation");
const AutomationRule = lazyPage(() => import("./pages/Automation"), "AutomationRule");
const Schedule = lazyPage(() => import("./pages/Schedule"), "Schedule");
const Wallet = lazyPage(() => import("./pages/Wallet"), "Wallet");
const Developers = lazyPage(() => import("./pages/Developers"), "Developers");
const Webhook = lazyPage(() => import("./pages/Webhook"), "Webhook");
const Admin = lazyPage(() => import("./pages/Admin"), "Admin");
const Members = lazyPage(() => import("./pages/Members"), "Members");

export function App() {
  const token = useToken();
  const client = useQueryClient();
  // Another account's data must not outlive a sign-out.
  useEffect(() => {
    if (!token) client.clear();
  }, [token, client]);
  if (!token) {
    return (
      <Switch>
        <Route path="/signup" component={SignUp} />
        <Route path="/login" component={SignIn} />
        <Route path="/accept-invite" component={AcceptInvite} />
        <Route>
          <Redirect to="/login" replace />
        </Route>
      </Switch>
    );
  }
  return (
    <EventsProvider>
      <Switch>
        <Route path="/" component={Dashboard} />
        <Route path="/numbers" component={Numbers} />
        <Route path="/contacts" component={Contacts} />
        <Route path="/contacts/upload" component={Upload} />
        <Route path="/contacts/:id" component={ContactList} />
        <Route path="/wallet" component={Wallet} />
        <Route path="/developers" component={Developers} />
        <Route path="/developers/webhooks/:id" component={Webhook} />
        <Route path="/admin" component={Admin} />
        <Route path="/team" component={Members} />
        <Route path="/accept-invite" component={AcceptInvite} />
        <Route path="/inbox" component={Inbox} />
        <Route path="/inbox/:session/:peer" component={Inbox} />
        <Route path="/automation" component={Automation} />
        <Route path="/automation/new" component={AutomationRule} />
        <Route path="/automation/:id" component={AutomationRule} />
        <Route path="/schedule" component={Schedule} />
        <Route path="/campaigns" component={Campaigns} />
        <Route path="/campaigns/new" component={CampaignNew} />
        <Route path="/campaigns/:id" component={Campaign} />
        <Route path="/login">
          <Redirect to="/" replace />
        </Route>
        <Route path="/signup">
          <Redirect to="/" replace />
        </Route>
        <Route component={NotFound} />
      </Switch>
    </EventsProvider>
  );
}
