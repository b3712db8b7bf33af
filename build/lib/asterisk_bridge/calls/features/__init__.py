"""What follows a call without steering it: recording, the CRM journal, rating."""
