"""A virtual LTSP site network in a namespace of our own: the namespace
(netns.py), the NFS server (nfs.py), dnsmasq and the site as one context
manager (virtual.py).  Imports common and lab.spawn."""
