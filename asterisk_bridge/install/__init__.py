"""Installing numcfg's files into an Asterisk: the packaged sounds and the installer."""
