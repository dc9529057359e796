"""GraphQL of ticket dispatch: SLA rules, technicians' skills, auto-assignment, ticket figures."""
