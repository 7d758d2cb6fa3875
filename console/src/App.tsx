import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { Redirect, Route, Switch } from "wouter";
import { EventsProvider } from "./events";
import { Campaign } from "./pages/Campaign";
import { CampaignNew } from "./pages/CampaignNew";
import { Campaigns } from "./pages/Campaigns";
import { useToken } from "./lib/auth";
import { ContactList } from "./pages/ContactList";
import { Contacts } from "./pages/Contacts";
import { Dashboard } from "./pages/Dashboard";
import { NotFound } from "./pages/NotFound";
import { Numbers } from "./pages/Numbers";
import { SignIn, SignUp } from "./pages/Auth";
import { Upload } from "./pages/Upload";

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
